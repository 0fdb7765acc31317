"""The demo shop's orders, in an SQLite file created with sample orders on first use, so that
order lookup works out of the box (``kb chat``: try 202611150001, phone ending 5678)."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path

from bots.orders.backend import Order


def sample_orders(today: date) -> list[Order]:
    """A handful of orders in every state, dated around ``today``."""

    def day(offset: int) -> str:
        return (today + timedelta(days=offset)).isoformat()

    return [
        Order(
            "202611150001", "in_transit", day(-2), ["蓝牙耳机 Pro"], "顺丰速运", "SF1402394857", day(1),
            "到达【上海转运中心】", f"{day(0)} 08:12", "13812345678",
            {"province": "上海市", "city": "上海市", "district": "浦东新区", "street": "张江路 88 号 3 栋 1201 室"},
            ["chat:demo"],
        ),
        Order(
            "202611150002", "delivered", day(-6), ["运动鞋 42 码"], "中通快递", "ZT7781234560", day(-3),
            "已签收，签收人：本人", f"{day(-3)} 14:30", "13900001111",
            {"province": "广东省", "city": "深圳市", "district": "南山区", "street": "科技园南路 12 号"},
        ),
        Order(
            "202611150003", "paid", day(0), ["羽绒服 L 黑色"], None, None, day(3),
            None, None, "13700002222",
            {"province": "北京市", "city": "北京市", "district": "朝阳区", "street": "建国路 1 号"},
        ),
        Order(
            "202611150004", "out_for_delivery", day(-3), ["电饭煲"], "京东物流", "JD0099887766", day(0),
            "快递员正在派送", f"{day(0)} 09:40", "+44 7700 900123",
            {"province": "England", "city": "London", "district": "Camden", "street": "221B Baker Street"},
        ),
        Order(
            "202611150005", "cancelled", day(-10), ["口红套装"], None, None, None,
            None, None, "13600003333",
            {"province": "浙江省", "city": "杭州市", "district": "西湖区", "street": "文三路 100 号"},
        ),
    ]  # fmt: skip


class DemoOrderBackend:
    def __init__(self, path: str | Path, today: date | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute("CREATE TABLE IF NOT EXISTS orders (number TEXT PRIMARY KEY, data TEXT NOT NULL)")
            if self._db.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 0:
                self._db.executemany(
                    # OR IGNORE: several workers starting at once all find the table empty.
                    "INSERT OR IGNORE INTO orders VALUES (?, ?)",
                    [(o.number, json.dumps(o.__dict__, ensure_ascii=False)) for o in sample_orders(today or date.today())],
                )

    def get(self, number: str) -> Order | None:
        with self._lock:
            row = self._db.execute("SELECT data FROM orders WHERE number = ?", (number,)).fetchone()
        return Order.from_dict(json.loads(row[0])) if row else None

    def add(self, order: Order) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO orders VALUES (?, ?)", (order.number, json.dumps(order.__dict__, ensure_ascii=False))
            )

"""The desk's accounts: argon2 password hashes, sign-in with a lock-out after repeated failures."""

from __future__ import annotations

import time
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bots.store import Account, Accounts
from kb.vocabulary import DeskRole

LOCK_AFTER = 5
"""Wrong passwords in a row before the account is locked."""
LOCK_SECONDS = 15 * 60
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Checked against when the name is unknown, so that a wrong name takes as long as a wrong password.
_UNKNOWN = _hasher.hash("no such account, no such password")


class AccountError(ValueError):
    """A name, role or password that cannot make an account."""


def add_user(store: Accounts, name: str, password: str, role: str, language: str = "zh", now: float | None = None) -> Account:
    """Create the account, or give an existing one a new password, role and language (its
    sessions end, so that a changed password or a lowered role takes effect at once)."""
    name = name.strip()
    if not name or len(name) > 60 or not name.isprintable() or " " in name:
        raise AccountError("a name is 1-60 characters without spaces")
    if role not in tuple(DeskRole):
        raise AccountError(f"the role is one of {', '.join(DeskRole)}")
    if language not in ("zh", "en"):
        raise AccountError("the language is zh or en")
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password has at least {MIN_PASSWORD} characters")
    account = Account(name, role, _hasher.hash(password), language, created_at=time.time() if now is None else now)
    store.save_account(account)
    store.drop_sessions_of(name)
    return account


@dataclass
class SignIn:
    account: Account | None
    """The account when the password was right and the account is not locked."""
    locked: bool = False


def sign_in(store: Accounts, name: str, password: str, now: float | None = None) -> SignIn:
    """Check a password. The fifth wrong one in a row locks the account for ``LOCK_SECONDS``;
    while locked, even the right password is refused."""
    now = time.time() if now is None else now
    account = store.account(name.strip())
    if account is None:
        _verify(_UNKNOWN, password)
        return SignIn(None)
    if account.locked_until > now:
        return SignIn(None, locked=True)
    if not _verify(account.password_hash, password):
        failures = store.record_failure(account.name, LOCK_AFTER, now + LOCK_SECONDS)
        return SignIn(None, locked=failures >= LOCK_AFTER)
    store.reset_failures(account.name)
    if _hasher.check_needs_rehash(account.password_hash):
        account.password_hash = _hasher.hash(password)
        store.save_account(account)
    return SignIn(account)


def unlock(store: Accounts, name: str) -> None:
    account = store.account(name)
    if account is not None:
        account.locked_until, account.failures = 0.0, 0
        store.save_account(account)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False

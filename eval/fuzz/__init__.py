"""A hostile client for ``kb serve``, kept in the project (issue 19).

``python -m eval.fuzz`` starts the real server as a process (:mod:`eval.fuzz.target`) with a
fake WeChat and Telegram API on loopback (:mod:`eval.fuzz.fakes`), sends bounded numbers of
hostile requests of every class (:mod:`eval.fuzz.attacks`), drives the OpenAPI schema of the
JSON endpoints with schemathesis (:mod:`eval.fuzz.schema`), and reports what came back
(:mod:`eval.fuzz.run`): counts by class and status, 5xx, tracebacks in the server's output,
slow answers, and the raw personal data it sent that is found in the state database, its WAL or
the logs. Nothing here imports ``bots``: the server is a black box, as it is to an attacker.
"""

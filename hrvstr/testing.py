"""How big the suite's proofs run: small by default so ``make test`` stays quick, full in CI.

``HRVSTR_PROOFS=full`` (CI, ``make test-full``) runs the property tests, the API fuzzing and the
screenshots at the sizes that found bugs before; the default runs the same code on fewer cases,
one browser journey of eleven, and not the proofs that start servers in subprocesses.
A specific variable (``HRVSTR_FUZZ_EXAMPLES=100``) still wins over both.

Also what tests ask PostgreSQL about their own connection (``prepared_statement_uses``).
"""

from __future__ import annotations

import os
from typing import Any


def full_proofs() -> bool:
    """True when the suite runs its proofs at full size (CI)."""
    value = os.environ.get("HRVSTR_PROOFS", "small").strip().lower()
    if value not in {"small", "full"}:
        raise ValueError(f"HRVSTR_PROOFS must be 'small' or 'full', not {value!r}")
    return value == "full"


def proof_size(variable: str, *, small: int, full: int) -> int:
    """The number of cases for one proof: ``variable`` if set, else the small or full default."""
    if variable in os.environ:
        return int(os.environ[variable])
    return full if full_proofs() else small


def full_size_only() -> Any:
    """The mark for a proof that runs whole or not at all (a browser journey, a server started
    in a subprocess): skipped under ``make test``, run by ``make test-full`` and CI."""
    import pytest  # the suite's mark; this module is only imported by tests

    return pytest.mark.skipif(
        not full_proofs(), reason="runs at full proof size only: HRVSTR_PROOFS=full"
    )


def prepared_statement_uses(fragment: str) -> list[int]:
    """For each statement psycopg prepared on this connection whose SQL contains
    ``fragment``: how many times PostgreSQL ran it from its cached plans (PostgreSQL 14+)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE NOT from_sql AND strpos(statement, %s) > 0",
            [fragment],
        )
        return [uses for (uses,) in cursor.fetchall()]

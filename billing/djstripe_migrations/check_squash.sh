#!/usr/bin/env bash
# Proves that our squashed dj-stripe migration matches upstream's: migrates one PostgreSQL
# database the upstream way (slow: 50-140 s) and one with the squash, checks that the first
# is seen as up to date, and compares the two schemas column by column.
# Usage: billing/djstripe_migrations/check_squash.sh [postgres://postgres@127.0.0.1:5432]
set -euo pipefail
cd "$(dirname "$0")/../.."
server="${1:-postgres://postgres@127.0.0.1:5432}"
py=.venv/bin/python
export HRVSTR_TESTING=true
settings_file=hrvstr/_upstream_migrations.py
trap 'rm -f "$settings_file"' EXIT
printf 'from hrvstr.settings_test import *  # noqa\nMIGRATION_MODULES = {}\n' > "$settings_file"

for db in hrvstr_squash_upstream hrvstr_squash_ours; do
    psql "$server/postgres" -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
done
echo "upstream migrations:"
time DATABASE_URL="$server/hrvstr_squash_upstream" $py manage.py migrate -v0 --settings hrvstr._upstream_migrations
echo "our squash:"
time DATABASE_URL="$server/hrvstr_squash_ours" $py manage.py migrate -v0
DATABASE_URL="$server/hrvstr_squash_upstream" $py manage.py migrate djstripe | tee /dev/stderr | grep -q "No migrations to apply"
columns() {
    psql "$server/$1" -At -c "select table_name||'.'||column_name||':'||data_type||':'||is_nullable
        from information_schema.columns where table_name like 'djstripe%' order by 1"
}
diff <(columns hrvstr_squash_upstream) <(columns hrvstr_squash_ours)
echo "OK: $(columns hrvstr_squash_ours | wc -l) dj-stripe columns identical; upstream database up to date"

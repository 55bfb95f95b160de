#!/bin/sh
# First start only (the official image runs /docker-entrypoint-initdb.d on an empty data folder):
# the gateway's own user and database, so the exposed pod holds no credential to the others' tables.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<SQL
CREATE USER gateway PASSWORD '$GATEWAY_PASSWORD';
CREATE DATABASE retina_gateway OWNER gateway;
SQL

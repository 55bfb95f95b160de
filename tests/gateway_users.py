"""People for the gateway tests: users made straight in a cluster's gateway database, with a token."""

from __future__ import annotations

from retina.services.cli.cluster import LocalCluster
from retina.services.gateway.accounts import AccountStore


def add_users(
    cluster: LocalCluster, users: dict[str, tuple[str, list[str]]], password: str
) -> dict[str, str]:
    """Create each ``name: (department, roles)`` with ``password``; return an API token (one day) per name."""
    store = AccountStore(cluster.gateway_data_dir / "gateway.sqlite")
    try:
        for name, (department, roles) in users.items():
            store.add_user(name, department, roles, password)
        return {name: store.create_token(name, 1)[0] for name in users}
    finally:
        store.close()

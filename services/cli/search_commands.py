"""``retina search serve|rebuild|query|plate``: search by image (以图搜图) and by plate (车牌检索)."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer

from retina.services.cli.common import SEARCH_ADDRESS, service_settings, start_logging, with_auth_flags
from retina.services.core.settings import SearchSettings, default

app = typer.Typer(help="search by image (以图搜图)", no_args_is_help=True)


class Family(StrEnum):
    person = "person"
    vehicle = "vehicle"
    non_motor = "non_motor"


@app.command(
    epilog="Every option can also be set as an environment variable: RETINA_SEARCH_<OPTION>,"
    " e.g. RETINA_SEARCH_GRPC_PORT (the flag wins).",
)
@with_auth_flags
def serve(
    context: typer.Context,
    config: Annotated[
        str | None,
        typer.Option(
            help="the cluster config (its features and search sections; required)", show_default=False
        ),
    ] = None,
    data_dir: Annotated[str, typer.Option()] = default(SearchSettings, "data_dir"),
    nats_url: Annotated[str | None, typer.Option(help="default: nats.url of the config")] = None,
    grpc_port: Annotated[int, typer.Option()] = default(SearchSettings, "grpc_port"),
    metrics_port: Annotated[int, typer.Option()] = default(SearchSettings, "metrics_port"),
    incidents_address: Annotated[str, typer.Option(help="for searches by incident id")] = default(
        SearchSettings, "incidents_address"
    ),
    listen: Annotated[str, typer.Option(help="address for gRPC and metrics")] = default(
        SearchSettings, "listen"
    ),
    replica_id: Annotated[
        str | None,
        typer.Option(
            help="this replica's own FEATURES consumer, search-index-<id> (default: the host name;"
            " '': the shared search-index, as retina up)",
            show_default=False,
        ),
    ] = None,
) -> int:
    """run the search service (FEATURES stream → FAISS index, gRPC)"""
    from retina.services.search.service import run_search_service

    settings = service_settings(SearchSettings, context, "search")
    run_search_service(settings, settings.cluster)
    return 0


@app.command()
def rebuild(
    config: Annotated[str | None, typer.Option(help="the cluster config (or RETINA_SEARCH_CONFIG)")] = None,
    data_dir: Annotated[
        str | None, typer.Option(help="the search service's folder (or RETINA_SEARCH_DATA_DIR)")
    ] = None,
) -> int:
    """rebuild the index files from the feature store (service stopped)"""
    from retina.services.cli.output import progress
    from retina.services.search.engine import SearchEngine

    start_logging("search")
    given = {name: value for name, value in (("config", config), ("data_dir", data_dir)) if value}
    settings = SearchSettings.load(given)  # the same folder and config the service uses
    engine = SearchEngine(Path(settings.data_dir), settings.cluster)
    with progress("rebuilding the index from the feature store"):
        vectors = engine.rebuild()
    tracks, _ = engine.store.counts()
    print(f"rebuilt the index from the feature store: {tracks} tracks, {vectors} vectors")
    return 0


@app.command()
def query(
    department: Annotated[str, typer.Option(help="who searches (results follow sharing scopes)")],
    image: Annotated[str | None, typer.Option(help="a photo (JPEG, PNG...) of the person or vehicle")] = None,
    incident: Annotated[str | None, typer.Option(help="the object of this incident")] = None,
    track: Annotated[str | None, typer.Option(help="a track id from an earlier result")] = None,
    region: Annotated[
        str | None, typer.Option(help="x1,y1,x2,y2: the part of the photo showing the object (0-1)")
    ] = None,
    k: Annotated[int, typer.Option("-k", help="results wanted (1-100)")] = 10,
    camera: Annotated[list[str], typer.Option(help="only this camera (repeatable)")] = [],  # noqa: B006
    family: Annotated[list[Family], typer.Option(help="only this kind of object (repeatable)")] = [],  # noqa: B006
    colour: Annotated[list[str], typer.Option(help="e.g. white, red (repeatable)")] = [],  # noqa: B006
    since: Annotated[
        str | None, typer.Option(help="ISO time, e.g. 2026-11-22T08:00:00 (UTC unless it has an offset)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO time (UTC unless it has an offset)")] = None,
    save_crops: Annotated[
        str | None, typer.Option(help="write each match's crop into this folder (created if missing)")
    ] = None,
    address: Annotated[str, typer.Option()] = SEARCH_ADDRESS,
) -> int:
    """find where a person or vehicle appeared"""
    from retina.services.cli.clients import operator_token, search
    from retina.services.search import client
    from retina.services.search.client import QueryError

    given = [
        flag for flag, value in (("--image", image), ("--incident", incident), ("--track", track)) if value
    ]
    if len(given) != 1:
        what = "give one" if not given else f"{given[1]}: not allowed with {given[0]}; give only one"
        print(f"error: {what} of --image, --incident or --track", file=sys.stderr)
        return 2
    flags = SimpleNamespace(
        image=image, incident=incident, track=track, region=region, department=department, k=k,
        camera=camera, family=[f.value for f in family], colour=colour, since=since, until=until,
        address=address,
    )  # fmt: skip
    try:
        folder = client.crop_folder(save_crops) if save_crops else None
        reply = search(flags)
        matches = list(reply.matches)
        crops = client.save_crops(address, department, matches, folder, operator_token()) if folder else {}
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not reply.matches:
        print("no match (nothing similar on the cameras this department may search)")
    for rank, match in enumerate(reply.matches, 1):
        crop = f"  crop: {crops[match.track_id]}" if match.track_id in crops else ""
        print(
            f"{rank:2}. score={match.score:.3f}  {match.camera_id:12} {match.family:9} "
            f"{match.first_seen.ToDatetime():%Y-%m-%d %H:%M:%S}Z..{match.last_seen.ToDatetime():%H:%M:%S}Z  "
            f"{','.join(match.colours):12} {match.track_id}{crop}"
        )
    return 0


@app.command("plate")
def plate(
    plate: Annotated[
        str, typer.Argument(help="a plate (浙B2V9L7) or pattern: * any run, ? one character (浙B*)")
    ],
    department: Annotated[str, typer.Option(help="who searches (results follow sharing scopes)")],
    exact_only: Annotated[
        bool, typer.Option("--exact-only", help="no confusable characters (0/D/Q/O, 8/B, 1/I, 5/S, 2/Z)")
    ] = False,
    k: Annotated[int, typer.Option("-k", help="results wanted (1-100)")] = 20,
    camera: Annotated[list[str], typer.Option(help="only this camera (repeatable)")] = [],  # noqa: B006
    since: Annotated[
        str | None, typer.Option(help="ISO time, e.g. 2026-11-22T08:00:00 (UTC unless it has an offset)")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO time (UTC unless it has an offset)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per match")] = False,
    address: Annotated[str, typer.Option()] = SEARCH_ADDRESS,
) -> int:
    """find the vehicle tracks whose licence plate matches PLATE (车牌检索), exact matches first"""
    import json

    from retina.services.cli.clients import operator_token
    from retina.services.search.client import QueryError, search_plates

    flags = SimpleNamespace(
        plate=plate, department=department, exact_only=exact_only, k=k, camera=camera, since=since,
        until=until, address=address,
    )  # fmt: skip
    try:
        reply = search_plates(flags, operator_token)
    except QueryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    if not reply.matches and not as_json:
        print("no plate matches (on the cameras this department may search)")
    for rank, found in enumerate(reply.matches, 1):
        match = found.match
        first, last = match.first_seen.ToDatetime(), match.last_seen.ToDatetime()
        if as_json:
            row = {
                "plate": found.plate, "exact": found.exact, "colour": found.colour,
                "confidence": round(found.confidence, 4), "reads": found.reads, "track_id": match.track_id,
                "camera_id": match.camera_id, "first_seen": f"{first:%Y-%m-%dT%H:%M:%S}Z",
                "last_seen": f"{last:%Y-%m-%dT%H:%M:%S}Z",
            }  # fmt: skip
            print(json.dumps(row, ensure_ascii=False))
            continue
        how = "exact  " if found.exact else "similar"
        print(
            f"{rank:2}. {found.plate:10} {how} {found.colour:6} {found.confidence:.2f}  {match.camera_id:12} "
            f"{first:%Y-%m-%d %H:%M:%S}Z..{last:%H:%M:%S}Z  {match.track_id}"
        )
    return 0


@app.command("eval")
def eval_(
    folder: Annotated[str, typer.Argument(help="crops named <identity>_<camera>_<n>.jpg (Market-1501)")],
    family: Annotated[Family, typer.Option(help="whose configured embedder to score")],
    config: Annotated[
        str | None, typer.Option(help="the cluster config (its features section); default: built-in")
    ] = None,
    embedder: Annotated[
        str | None, typer.Option(help="score this embedder instead of the family's configured one")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="one JSON object")] = False,
) -> int:
    """score the configured embedder on re-identification crops: recall@1/5/10 and mAP"""
    import json

    from retina.services.cli.common import load
    from retina.services.core.config import ConfigError, RetinaConfig
    from retina.services.core.features import available_embedders, make_embedder
    from retina.services.search.reid_eval import evaluate

    path = Path(folder)
    if not path.is_dir():
        print(f"error: {folder}: not a folder", file=sys.stderr)
        return 2
    cluster = load(config).config if config else RetinaConfig()
    features = cluster.features
    if embedder is not None:
        if embedder not in available_embedders():
            known = ", ".join(sorted(available_embedders()))
            raise ConfigError([f"--embedder: unknown {embedder!r} (available: {known})"])
        features = features.model_copy(update={"embedders": {family.value: embedder}})
    model = make_embedder(features, cluster.detector, family.value)
    try:
        result = evaluate(path, model.embed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scores = {key: result[key] for key in ("recall@1", "recall@5", "recall@10", "mAP")}
    if json_output:
        print(json.dumps(scores))
    else:
        print(
            f"{model.key} on {result['images']} crops of {result['identities']} identities"
            f" ({result['queries']} queries, {family.value}):"
        )
        print("  ".join(f"{key}={value:.3f}" for key, value in scores.items()))
    return 0

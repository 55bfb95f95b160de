import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from retina.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PlateSearchRequest(_message.Message):
    __slots__ = ("plate", "exact_only", "filters", "k", "department")
    PLATE_FIELD_NUMBER: _ClassVar[int]
    EXACT_ONLY_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    plate: str
    exact_only: bool
    filters: SearchFilters
    k: int
    department: str
    def __init__(self, plate: _Optional[str] = ..., exact_only: _Optional[bool] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., k: _Optional[int] = ..., department: _Optional[str] = ...) -> None: ...

class PlateMatch(_message.Message):
    __slots__ = ("match", "plate", "colour", "confidence", "reads", "exact")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    PLATE_FIELD_NUMBER: _ClassVar[int]
    COLOUR_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    READS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    match: Match
    plate: str
    colour: str
    confidence: float
    reads: int
    exact: bool
    def __init__(self, match: _Optional[_Union[Match, _Mapping]] = ..., plate: _Optional[str] = ..., colour: _Optional[str] = ..., confidence: _Optional[float] = ..., reads: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class PlateSearchResponse(_message.Message):
    __slots__ = ("matches",)
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[PlateMatch]
    def __init__(self, matches: _Optional[_Iterable[_Union[PlateMatch, _Mapping]]] = ...) -> None: ...

class GetCropRequest(_message.Message):
    __slots__ = ("track_id", "department")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    department: str
    def __init__(self, track_id: _Optional[str] = ..., department: _Optional[str] = ...) -> None: ...

class Crop(_message.Message):
    __slots__ = ("jpeg", "seen_at")
    JPEG_FIELD_NUMBER: _ClassVar[int]
    SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    seen_at: _timestamp_pb2.Timestamp
    def __init__(self, jpeg: _Optional[bytes] = ..., seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SearchFilters(_message.Message):
    __slots__ = ("camera_ids", "start", "end", "families", "colours")
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    FAMILIES_FIELD_NUMBER: _ClassVar[int]
    COLOURS_FIELD_NUMBER: _ClassVar[int]
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    families: _containers.RepeatedScalarFieldContainer[str]
    colours: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, camera_ids: _Optional[_Iterable[str]] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., families: _Optional[_Iterable[str]] = ..., colours: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("image", "incident_id", "track_id", "region", "k", "filters", "department")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    image: bytes
    incident_id: str
    track_id: str
    region: _common_pb2.BBox
    k: int
    filters: SearchFilters
    department: str
    def __init__(self, image: _Optional[bytes] = ..., incident_id: _Optional[str] = ..., track_id: _Optional[str] = ..., region: _Optional[_Union[_common_pb2.BBox, _Mapping]] = ..., k: _Optional[int] = ..., filters: _Optional[_Union[SearchFilters, _Mapping]] = ..., department: _Optional[str] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("track_id", "camera_id", "score", "first_seen", "last_seen", "family", "class_name", "colours", "has_crop", "crop_seen_at", "bbox")
    TRACK_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    FAMILY_FIELD_NUMBER: _ClassVar[int]
    CLASS_NAME_FIELD_NUMBER: _ClassVar[int]
    COLOURS_FIELD_NUMBER: _ClassVar[int]
    HAS_CROP_FIELD_NUMBER: _ClassVar[int]
    CROP_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    track_id: str
    camera_id: str
    score: float
    first_seen: _timestamp_pb2.Timestamp
    last_seen: _timestamp_pb2.Timestamp
    family: str
    class_name: str
    colours: _containers.RepeatedScalarFieldContainer[str]
    has_crop: bool
    crop_seen_at: _timestamp_pb2.Timestamp
    bbox: _common_pb2.BBox
    def __init__(self, track_id: _Optional[str] = ..., camera_id: _Optional[str] = ..., score: _Optional[float] = ..., first_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., family: _Optional[str] = ..., class_name: _Optional[str] = ..., colours: _Optional[_Iterable[str]] = ..., has_crop: _Optional[bool] = ..., crop_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., bbox: _Optional[_Union[_common_pb2.BBox, _Mapping]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("matches", "embedder")
    MATCHES_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    matches: _containers.RepeatedCompositeFieldContainer[Match]
    embedder: str
    def __init__(self, matches: _Optional[_Iterable[_Union[Match, _Mapping]]] = ..., embedder: _Optional[str] = ...) -> None: ...

class GetIndexStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("start", "kind", "vectors")
    START_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    kind: str
    vectors: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., vectors: _Optional[int] = ...) -> None: ...

class IndexStats(_message.Message):
    __slots__ = ("tracks", "vectors", "shards", "embedder", "records_applied")
    TRACKS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    RECORDS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    tracks: int
    vectors: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardStats]
    embedder: str
    records_applied: int
    def __init__(self, tracks: _Optional[int] = ..., vectors: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardStats, _Mapping]]] = ..., embedder: _Optional[str] = ..., records_applied: _Optional[int] = ...) -> None: ...

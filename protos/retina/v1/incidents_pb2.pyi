import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from retina.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListIncidentsRequest(_message.Message):
    __slots__ = ("camera_id", "department", "algorithm", "state", "since", "limit")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    department: str
    algorithm: str
    state: str
    since: _timestamp_pb2.Timestamp
    limit: int
    def __init__(self, camera_id: _Optional[str] = ..., department: _Optional[str] = ..., algorithm: _Optional[str] = ..., state: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents",)
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CloseIncidentRequest(_message.Message):
    __slots__ = ("id", "closed_by", "note")
    ID_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    closed_by: str
    note: str
    def __init__(self, id: _Optional[str] = ..., closed_by: _Optional[str] = ..., note: _Optional[str] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("id", "camera_id", "camera_name", "department", "algorithm", "zone", "state", "started_at", "last_seen_at", "ended_at", "dwell_seconds", "bbox", "confidence", "location", "snapshot_path", "revision", "end_reason", "dispatch_status", "closed_by", "close_note", "closed_at", "message_json", "clip_path", "track_key")
    ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_NAME_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    DWELL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BBOX_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_PATH_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    END_REASON_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_STATUS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSE_NOTE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    CLIP_PATH_FIELD_NUMBER: _ClassVar[int]
    TRACK_KEY_FIELD_NUMBER: _ClassVar[int]
    id: str
    camera_id: str
    camera_name: str
    department: str
    algorithm: str
    zone: str
    state: str
    started_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    ended_at: _timestamp_pb2.Timestamp
    dwell_seconds: float
    bbox: _common_pb2.BBox
    confidence: float
    location: _common_pb2.GeoLocation
    snapshot_path: str
    revision: int
    end_reason: str
    dispatch_status: str
    closed_by: str
    close_note: str
    closed_at: _timestamp_pb2.Timestamp
    message_json: str
    clip_path: str
    track_key: str
    def __init__(self, id: _Optional[str] = ..., camera_id: _Optional[str] = ..., camera_name: _Optional[str] = ..., department: _Optional[str] = ..., algorithm: _Optional[str] = ..., zone: _Optional[str] = ..., state: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dwell_seconds: _Optional[float] = ..., bbox: _Optional[_Union[_common_pb2.BBox, _Mapping]] = ..., confidence: _Optional[float] = ..., location: _Optional[_Union[_common_pb2.GeoLocation, _Mapping]] = ..., snapshot_path: _Optional[str] = ..., revision: _Optional[int] = ..., end_reason: _Optional[str] = ..., dispatch_status: _Optional[str] = ..., closed_by: _Optional[str] = ..., close_note: _Optional[str] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_json: _Optional[str] = ..., clip_path: _Optional[str] = ..., track_key: _Optional[str] = ...) -> None: ...

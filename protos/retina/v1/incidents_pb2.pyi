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
    __slots__ = ("camera_id", "department", "algorithm", "state", "since", "limit", "visible_to", "zone", "until", "offset", "dispatch_status")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_TO_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_STATUS_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    department: str
    algorithm: str
    state: str
    since: _timestamp_pb2.Timestamp
    limit: int
    visible_to: _containers.RepeatedScalarFieldContainer[str]
    zone: str
    until: _timestamp_pb2.Timestamp
    offset: int
    dispatch_status: str
    def __init__(self, camera_id: _Optional[str] = ..., department: _Optional[str] = ..., algorithm: _Optional[str] = ..., state: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., visible_to: _Optional[_Iterable[str]] = ..., zone: _Optional[str] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offset: _Optional[int] = ..., dispatch_status: _Optional[str] = ...) -> None: ...

class ListIncidentsResponse(_message.Message):
    __slots__ = ("incidents",)
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    incidents: _containers.RepeatedCompositeFieldContainer[Incident]
    def __init__(self, incidents: _Optional[_Iterable[_Union[Incident, _Mapping]]] = ...) -> None: ...

class GetDispatchStatsRequest(_message.Message):
    __slots__ = ("visible_to", "since", "until")
    VISIBLE_TO_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    visible_to: _containers.RepeatedScalarFieldContainer[str]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    def __init__(self, visible_to: _Optional[_Iterable[str]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DispatchStatsRow(_message.Message):
    __slots__ = ("camera_id", "algorithm", "incidents", "closed", "false_alarms", "false_alarm_ratio")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARMS_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARM_RATIO_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    algorithm: str
    incidents: int
    closed: int
    false_alarms: int
    false_alarm_ratio: float
    def __init__(self, camera_id: _Optional[str] = ..., algorithm: _Optional[str] = ..., incidents: _Optional[int] = ..., closed: _Optional[int] = ..., false_alarms: _Optional[int] = ..., false_alarm_ratio: _Optional[float] = ...) -> None: ...

class DispatchStats(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[DispatchStatsRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[DispatchStatsRow, _Mapping]]] = ...) -> None: ...

class GetIncidentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DispatchRequest(_message.Message):
    __slots__ = ("id", "action", "actor", "note", "assignee", "due_at", "reason", "outcome", "photo", "expected_status", "verify_seconds")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PHOTO_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_STATUS_FIELD_NUMBER: _ClassVar[int]
    VERIFY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: str
    actor: str
    note: str
    assignee: str
    due_at: _timestamp_pb2.Timestamp
    reason: str
    outcome: str
    photo: bytes
    expected_status: str
    verify_seconds: float
    def __init__(self, id: _Optional[str] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., assignee: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ..., outcome: _Optional[str] = ..., photo: _Optional[bytes] = ..., expected_status: _Optional[str] = ..., verify_seconds: _Optional[float] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("at", "kind", "action", "revision", "actor", "note", "status", "media_path", "details_json")
    AT_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MEDIA_PATH_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    kind: str
    action: str
    revision: int
    actor: str
    note: str
    status: str
    media_path: str
    details_json: str
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., kind: _Optional[str] = ..., action: _Optional[str] = ..., revision: _Optional[int] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., status: _Optional[str] = ..., media_path: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class IncidentHistory(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ...) -> None: ...

class GetMediaRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class MediaChunk(_message.Message):
    __slots__ = ("data", "content_type", "size")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    size: int
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class Incident(_message.Message):
    __slots__ = ("id", "camera_id", "camera_name", "department", "algorithm", "zone", "state", "started_at", "last_seen_at", "ended_at", "dwell_seconds", "bbox", "confidence", "location", "snapshot_path", "revision", "end_reason", "dispatch_status", "closed_by", "close_note", "closed_at", "message_json", "clip_path", "track_key", "visible_to", "assignee", "due_at", "close_reason", "verify_due_at")
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
    VISIBLE_TO_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    VERIFY_DUE_AT_FIELD_NUMBER: _ClassVar[int]
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
    visible_to: _containers.RepeatedScalarFieldContainer[str]
    assignee: str
    due_at: _timestamp_pb2.Timestamp
    close_reason: str
    verify_due_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., camera_id: _Optional[str] = ..., camera_name: _Optional[str] = ..., department: _Optional[str] = ..., algorithm: _Optional[str] = ..., zone: _Optional[str] = ..., state: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dwell_seconds: _Optional[float] = ..., bbox: _Optional[_Union[_common_pb2.BBox, _Mapping]] = ..., confidence: _Optional[float] = ..., location: _Optional[_Union[_common_pb2.GeoLocation, _Mapping]] = ..., snapshot_path: _Optional[str] = ..., revision: _Optional[int] = ..., end_reason: _Optional[str] = ..., dispatch_status: _Optional[str] = ..., closed_by: _Optional[str] = ..., close_note: _Optional[str] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., message_json: _Optional[str] = ..., clip_path: _Optional[str] = ..., track_key: _Optional[str] = ..., visible_to: _Optional[_Iterable[str]] = ..., assignee: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_reason: _Optional[str] = ..., verify_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

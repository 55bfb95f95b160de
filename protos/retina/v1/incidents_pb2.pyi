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

class ListCasesRequest(_message.Message):
    __slots__ = ("visible_to", "status", "category", "camera_id", "department", "grid_prefix", "overdue_only", "since", "until", "limit", "offset", "incident_id", "assignee")
    VISIBLE_TO_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    GRID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_ONLY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_ID_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    visible_to: _containers.RepeatedScalarFieldContainer[str]
    status: str
    category: str
    camera_id: str
    department: str
    grid_prefix: str
    overdue_only: bool
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    limit: int
    offset: int
    incident_id: str
    assignee: str
    def __init__(self, visible_to: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ..., category: _Optional[str] = ..., camera_id: _Optional[str] = ..., department: _Optional[str] = ..., grid_prefix: _Optional[str] = ..., overdue_only: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., incident_id: _Optional[str] = ..., assignee: _Optional[str] = ...) -> None: ...

class ListCasesResponse(_message.Message):
    __slots__ = ("cases",)
    CASES_FIELD_NUMBER: _ClassVar[int]
    cases: _containers.RepeatedCompositeFieldContainer[Case]
    def __init__(self, cases: _Optional[_Iterable[_Union[Case, _Mapping]]] = ...) -> None: ...

class GetCaseRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Case(_message.Message):
    __slots__ = ("id", "category_code", "category_name", "major_code", "major_name", "status", "department", "routed_by", "camera_id", "camera_department", "zone", "grid_code", "address", "location", "visible_to", "opened_at", "first_seen_at", "last_seen_at", "incident_count", "recurrence_of", "recurrences", "limit_working_hours", "limit_working_days", "dispatched_at", "assignee", "due_at", "working_seconds_left", "overdue", "extensions", "postponements", "returns", "pending_request", "pending_due_at", "pending_reason", "pending_by", "pending_at", "return_reason", "returned_by", "closed_at", "closed_by", "close_reason", "close_note")
    ID_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_NAME_FIELD_NUMBER: _ClassVar[int]
    MAJOR_CODE_FIELD_NUMBER: _ClassVar[int]
    MAJOR_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ROUTED_BY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERA_DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    VISIBLE_TO_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    FIRST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_AT_FIELD_NUMBER: _ClassVar[int]
    INCIDENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RECURRENCE_OF_FIELD_NUMBER: _ClassVar[int]
    RECURRENCES_FIELD_NUMBER: _ClassVar[int]
    LIMIT_WORKING_HOURS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_WORKING_DAYS_FIELD_NUMBER: _ClassVar[int]
    DISPATCHED_AT_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    WORKING_SECONDS_LEFT_FIELD_NUMBER: _ClassVar[int]
    OVERDUE_FIELD_NUMBER: _ClassVar[int]
    EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    POSTPONEMENTS_FIELD_NUMBER: _ClassVar[int]
    RETURNS_FIELD_NUMBER: _ClassVar[int]
    PENDING_REQUEST_FIELD_NUMBER: _ClassVar[int]
    PENDING_DUE_AT_FIELD_NUMBER: _ClassVar[int]
    PENDING_REASON_FIELD_NUMBER: _ClassVar[int]
    PENDING_BY_FIELD_NUMBER: _ClassVar[int]
    PENDING_AT_FIELD_NUMBER: _ClassVar[int]
    RETURN_REASON_FIELD_NUMBER: _ClassVar[int]
    RETURNED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    CLOSED_BY_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    CLOSE_NOTE_FIELD_NUMBER: _ClassVar[int]
    id: str
    category_code: str
    category_name: str
    major_code: str
    major_name: str
    status: str
    department: str
    routed_by: str
    camera_id: str
    camera_department: str
    zone: str
    grid_code: str
    address: str
    location: _common_pb2.GeoLocation
    visible_to: _containers.RepeatedScalarFieldContainer[str]
    opened_at: _timestamp_pb2.Timestamp
    first_seen_at: _timestamp_pb2.Timestamp
    last_seen_at: _timestamp_pb2.Timestamp
    incident_count: int
    recurrence_of: str
    recurrences: int
    limit_working_hours: float
    limit_working_days: int
    dispatched_at: _timestamp_pb2.Timestamp
    assignee: str
    due_at: _timestamp_pb2.Timestamp
    working_seconds_left: float
    overdue: bool
    extensions: int
    postponements: int
    returns: int
    pending_request: str
    pending_due_at: _timestamp_pb2.Timestamp
    pending_reason: str
    pending_by: str
    pending_at: _timestamp_pb2.Timestamp
    return_reason: str
    returned_by: str
    closed_at: _timestamp_pb2.Timestamp
    closed_by: str
    close_reason: str
    close_note: str
    def __init__(self, id: _Optional[str] = ..., category_code: _Optional[str] = ..., category_name: _Optional[str] = ..., major_code: _Optional[str] = ..., major_name: _Optional[str] = ..., status: _Optional[str] = ..., department: _Optional[str] = ..., routed_by: _Optional[str] = ..., camera_id: _Optional[str] = ..., camera_department: _Optional[str] = ..., zone: _Optional[str] = ..., grid_code: _Optional[str] = ..., address: _Optional[str] = ..., location: _Optional[_Union[_common_pb2.GeoLocation, _Mapping]] = ..., visible_to: _Optional[_Iterable[str]] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_seen_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., incident_count: _Optional[int] = ..., recurrence_of: _Optional[str] = ..., recurrences: _Optional[int] = ..., limit_working_hours: _Optional[float] = ..., limit_working_days: _Optional[int] = ..., dispatched_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., assignee: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., working_seconds_left: _Optional[float] = ..., overdue: _Optional[bool] = ..., extensions: _Optional[int] = ..., postponements: _Optional[int] = ..., returns: _Optional[int] = ..., pending_request: _Optional[str] = ..., pending_due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pending_reason: _Optional[str] = ..., pending_by: _Optional[str] = ..., pending_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., return_reason: _Optional[str] = ..., returned_by: _Optional[str] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_by: _Optional[str] = ..., close_reason: _Optional[str] = ..., close_note: _Optional[str] = ...) -> None: ...

class CaseIncident(_message.Message):
    __slots__ = ("incident", "link", "linked_at")
    INCIDENT_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    LINKED_AT_FIELD_NUMBER: _ClassVar[int]
    incident: Incident
    link: str
    linked_at: _timestamp_pb2.Timestamp
    def __init__(self, incident: _Optional[_Union[Incident, _Mapping]] = ..., link: _Optional[str] = ..., linked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CaseDetail(_message.Message):
    __slots__ = ("summary", "incidents")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    summary: Case
    incidents: _containers.RepeatedCompositeFieldContainer[CaseIncident]
    def __init__(self, summary: _Optional[_Union[Case, _Mapping]] = ..., incidents: _Optional[_Iterable[_Union[CaseIncident, _Mapping]]] = ...) -> None: ...

class CaseHistoryEntry(_message.Message):
    __slots__ = ("seq", "at", "action", "actor", "note", "status", "department", "details_json")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    at: _timestamp_pb2.Timestamp
    action: str
    actor: str
    note: str
    status: str
    department: str
    details_json: str
    def __init__(self, seq: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., status: _Optional[str] = ..., department: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class CaseHistory(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[CaseHistoryEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[CaseHistoryEntry, _Mapping]]] = ...) -> None: ...

class CaseStepRequest(_message.Message):
    __slots__ = ("id", "action", "actor", "note", "assignee", "department", "due_at", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    ASSIGNEE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    DUE_AT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    action: str
    actor: str
    note: str
    assignee: str
    department: str
    due_at: _timestamp_pb2.Timestamp
    reason: str
    def __init__(self, id: _Optional[str] = ..., action: _Optional[str] = ..., actor: _Optional[str] = ..., note: _Optional[str] = ..., assignee: _Optional[str] = ..., department: _Optional[str] = ..., due_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reason: _Optional[str] = ...) -> None: ...

class GetAssessmentRequest(_message.Message):
    __slots__ = ("by", "since", "until", "department", "area_digits")
    BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    AREA_DIGITS_FIELD_NUMBER: _ClassVar[int]
    by: str
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    department: str
    area_digits: int
    def __init__(self, by: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., department: _Optional[str] = ..., area_digits: _Optional[int] = ...) -> None: ...

class AssessmentRow(_message.Message):
    __slots__ = ("key", "cases", "closed", "due", "postponed", "closed_on_time", "reworked", "extended", "on_time_rate", "close_rate", "rework_rate", "extension_rate")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CASES_FIELD_NUMBER: _ClassVar[int]
    CLOSED_FIELD_NUMBER: _ClassVar[int]
    DUE_FIELD_NUMBER: _ClassVar[int]
    POSTPONED_FIELD_NUMBER: _ClassVar[int]
    CLOSED_ON_TIME_FIELD_NUMBER: _ClassVar[int]
    REWORKED_FIELD_NUMBER: _ClassVar[int]
    EXTENDED_FIELD_NUMBER: _ClassVar[int]
    ON_TIME_RATE_FIELD_NUMBER: _ClassVar[int]
    CLOSE_RATE_FIELD_NUMBER: _ClassVar[int]
    REWORK_RATE_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_RATE_FIELD_NUMBER: _ClassVar[int]
    key: str
    cases: int
    closed: int
    due: int
    postponed: int
    closed_on_time: int
    reworked: int
    extended: int
    on_time_rate: float
    close_rate: float
    rework_rate: float
    extension_rate: float
    def __init__(self, key: _Optional[str] = ..., cases: _Optional[int] = ..., closed: _Optional[int] = ..., due: _Optional[int] = ..., postponed: _Optional[int] = ..., closed_on_time: _Optional[int] = ..., reworked: _Optional[int] = ..., extended: _Optional[int] = ..., on_time_rate: _Optional[float] = ..., close_rate: _Optional[float] = ..., rework_rate: _Optional[float] = ..., extension_rate: _Optional[float] = ...) -> None: ...

class AccuracyRow(_message.Message):
    __slots__ = ("key", "incidents", "reviewed", "confirmed", "false_alarms", "precision")
    KEY_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    REVIEWED_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    FALSE_ALARMS_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    key: str
    incidents: int
    reviewed: int
    confirmed: int
    false_alarms: int
    precision: float
    def __init__(self, key: _Optional[str] = ..., incidents: _Optional[int] = ..., reviewed: _Optional[int] = ..., confirmed: _Optional[int] = ..., false_alarms: _Optional[int] = ..., precision: _Optional[float] = ...) -> None: ...

class Assessment(_message.Message):
    __slots__ = ("rows", "accuracy")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[AssessmentRow]
    accuracy: _containers.RepeatedCompositeFieldContainer[AccuracyRow]
    def __init__(self, rows: _Optional[_Iterable[_Union[AssessmentRow, _Mapping]]] = ..., accuracy: _Optional[_Iterable[_Union[AccuracyRow, _Mapping]]] = ...) -> None: ...

class ReportCaseRequest(_message.Message):
    __slots__ = ("category_code", "department", "actor", "description", "address", "grid_code", "lat", "lon", "source", "media_url", "request_key")
    CATEGORY_CODE_FIELD_NUMBER: _ClassVar[int]
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    GRID_CODE_FIELD_NUMBER: _ClassVar[int]
    LAT_FIELD_NUMBER: _ClassVar[int]
    LON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_KEY_FIELD_NUMBER: _ClassVar[int]
    category_code: str
    department: str
    actor: str
    description: str
    address: str
    grid_code: str
    lat: float
    lon: float
    source: str
    media_url: str
    request_key: str
    def __init__(self, category_code: _Optional[str] = ..., department: _Optional[str] = ..., actor: _Optional[str] = ..., description: _Optional[str] = ..., address: _Optional[str] = ..., grid_code: _Optional[str] = ..., lat: _Optional[float] = ..., lon: _Optional[float] = ..., source: _Optional[str] = ..., media_url: _Optional[str] = ..., request_key: _Optional[str] = ...) -> None: ...

import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from retina.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CameraState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CAMERA_STATE_UNSPECIFIED: _ClassVar[CameraState]
    CAMERA_STATE_STARTING: _ClassVar[CameraState]
    CAMERA_STATE_ONLINE: _ClassVar[CameraState]
    CAMERA_STATE_OFFLINE: _ClassVar[CameraState]
    CAMERA_STATE_STALLED: _ClassVar[CameraState]
    CAMERA_STATE_STOPPED: _ClassVar[CameraState]
CAMERA_STATE_UNSPECIFIED: CameraState
CAMERA_STATE_STARTING: CameraState
CAMERA_STATE_ONLINE: CameraState
CAMERA_STATE_OFFLINE: CameraState
CAMERA_STATE_STALLED: CameraState
CAMERA_STATE_STOPPED: CameraState

class CaptureReferenceRequest(_message.Message):
    __slots__ = ("camera_id",)
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    def __init__(self, camera_id: _Optional[str] = ...) -> None: ...

class QualityReference(_message.Message):
    __slots__ = ("camera_id", "image", "captured_at", "source", "worker_id")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    image: bytes
    captured_at: _timestamp_pb2.Timestamp
    source: str
    worker_id: str
    def __init__(self, camera_id: _Optional[str] = ..., image: _Optional[bytes] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., source: _Optional[str] = ..., worker_id: _Optional[str] = ...) -> None: ...

class QualityCheck(_message.Message):
    __slots__ = ("name", "score", "enter", "leave", "problem", "since")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ENTER_FIELD_NUMBER: _ClassVar[int]
    LEAVE_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    score: float
    enter: float
    leave: float
    problem: bool
    since: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., score: _Optional[float] = ..., enter: _Optional[float] = ..., leave: _Optional[float] = ..., problem: _Optional[bool] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CameraQuality(_message.Message):
    __slots__ = ("checks", "problems", "rules", "note", "reference_at", "sampled_at")
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_AT_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_AT_FIELD_NUMBER: _ClassVar[int]
    checks: _containers.RepeatedCompositeFieldContainer[QualityCheck]
    problems: _containers.RepeatedScalarFieldContainer[str]
    rules: str
    note: str
    reference_at: _timestamp_pb2.Timestamp
    sampled_at: _timestamp_pb2.Timestamp
    def __init__(self, checks: _Optional[_Iterable[_Union[QualityCheck, _Mapping]]] = ..., problems: _Optional[_Iterable[str]] = ..., rules: _Optional[str] = ..., note: _Optional[str] = ..., reference_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., sampled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CaptureFrameRequest(_message.Message):
    __slots__ = ("camera_id", "zone")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    zone: str
    def __init__(self, camera_id: _Optional[str] = ..., zone: _Optional[str] = ...) -> None: ...

class CapturedFrame(_message.Message):
    __slots__ = ("jpeg", "captured_at", "width", "height")
    JPEG_FIELD_NUMBER: _ClassVar[int]
    CAPTURED_AT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    jpeg: bytes
    captured_at: _timestamp_pb2.Timestamp
    width: int
    height: int
    def __init__(self, jpeg: _Optional[bytes] = ..., captured_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class AssignCameraRequest(_message.Message):
    __slots__ = ("camera", "device_id", "resume", "reference")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    camera: _common_pb2.Camera
    device_id: str
    resume: _containers.RepeatedCompositeFieldContainer[_common_pb2.OpenIncident]
    reference: QualityReference
    def __init__(self, camera: _Optional[_Union[_common_pb2.Camera, _Mapping]] = ..., device_id: _Optional[str] = ..., resume: _Optional[_Iterable[_Union[_common_pb2.OpenIncident, _Mapping]]] = ..., reference: _Optional[_Union[QualityReference, _Mapping]] = ...) -> None: ...

class AssignCameraResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: CameraStatus
    def __init__(self, status: _Optional[_Union[CameraStatus, _Mapping]] = ...) -> None: ...

class ReleaseCameraRequest(_message.Message):
    __slots__ = ("camera_id", "handover")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    HANDOVER_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    handover: bool
    def __init__(self, camera_id: _Optional[str] = ..., handover: _Optional[bool] = ...) -> None: ...

class ReleaseCameraResponse(_message.Message):
    __slots__ = ("released", "open_incidents")
    RELEASED_FIELD_NUMBER: _ClassVar[int]
    OPEN_INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    released: bool
    open_incidents: _containers.RepeatedCompositeFieldContainer[_common_pb2.OpenIncident]
    def __init__(self, released: _Optional[bool] = ..., open_incidents: _Optional[_Iterable[_Union[_common_pb2.OpenIncident, _Mapping]]] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraStatus(_message.Message):
    __slots__ = ("camera_id", "device_id", "state", "reason", "since", "last_frame_at", "frames_decoded", "frames_analysed", "reconnects", "quality")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_AT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DECODED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ANALYSED_FIELD_NUMBER: _ClassVar[int]
    RECONNECTS_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    device_id: str
    state: CameraState
    reason: str
    since: _timestamp_pb2.Timestamp
    last_frame_at: _timestamp_pb2.Timestamp
    frames_decoded: int
    frames_analysed: int
    reconnects: int
    quality: CameraQuality
    def __init__(self, camera_id: _Optional[str] = ..., device_id: _Optional[str] = ..., state: _Optional[_Union[CameraState, str]] = ..., reason: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_frame_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., frames_decoded: _Optional[int] = ..., frames_analysed: _Optional[int] = ..., reconnects: _Optional[int] = ..., quality: _Optional[_Union[CameraQuality, _Mapping]] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("worker_id", "model", "cameras", "outbox_pending")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_PENDING_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    model: str
    cameras: _containers.RepeatedCompositeFieldContainer[CameraStatus]
    outbox_pending: int
    def __init__(self, worker_id: _Optional[str] = ..., model: _Optional[str] = ..., cameras: _Optional[_Iterable[_Union[CameraStatus, _Mapping]]] = ..., outbox_pending: _Optional[int] = ...) -> None: ...

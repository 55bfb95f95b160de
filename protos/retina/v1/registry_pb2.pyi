import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from retina.v1 import common_pb2 as _common_pb2
from retina.v1 import worker_pb2 as _worker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CreateCameraRequest(_message.Message):
    __slots__ = ("camera", "enabled")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    camera: _common_pb2.Camera
    enabled: bool
    def __init__(self, camera: _Optional[_Union[_common_pb2.Camera, _Mapping]] = ..., enabled: _Optional[bool] = ...) -> None: ...

class UpdateCameraRequest(_message.Message):
    __slots__ = ("camera", "enabled", "expected_revision")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    camera: _common_pb2.Camera
    enabled: bool
    expected_revision: int
    def __init__(self, camera: _Optional[_Union[_common_pb2.Camera, _Mapping]] = ..., enabled: _Optional[bool] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class DeleteCameraRequest(_message.Message):
    __slots__ = ("camera_id", "expected_revision")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_REVISION_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    expected_revision: int
    def __init__(self, camera_id: _Optional[str] = ..., expected_revision: _Optional[int] = ...) -> None: ...

class DeleteCameraResponse(_message.Message):
    __slots__ = ("revision",)
    REVISION_FIELD_NUMBER: _ClassVar[int]
    revision: int
    def __init__(self, revision: _Optional[int] = ...) -> None: ...

class GetCameraRequest(_message.Message):
    __slots__ = ("camera_id",)
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    def __init__(self, camera_id: _Optional[str] = ...) -> None: ...

class ListCamerasRequest(_message.Message):
    __slots__ = ("department", "scene_type", "algorithm", "enabled", "text", "page_size", "page_token")
    DEPARTMENT_FIELD_NUMBER: _ClassVar[int]
    SCENE_TYPE_FIELD_NUMBER: _ClassVar[int]
    ALGORITHM_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    department: str
    scene_type: str
    algorithm: str
    enabled: bool
    text: str
    page_size: int
    page_token: str
    def __init__(self, department: _Optional[str] = ..., scene_type: _Optional[str] = ..., algorithm: _Optional[str] = ..., enabled: _Optional[bool] = ..., text: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCamerasResponse(_message.Message):
    __slots__ = ("cameras", "next_page_token")
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraRecord]
    next_page_token: str
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchCamerasRequest(_message.Message):
    __slots__ = ("since_revision",)
    SINCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    since_revision: int
    def __init__(self, since_revision: _Optional[int] = ...) -> None: ...

class CameraHealth(_message.Message):
    __slots__ = ("camera_id", "status", "reason", "last_frame_at", "worker_id", "updated_at", "quality")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_FRAME_AT_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    status: _worker_pb2.CameraState
    reason: str
    last_frame_at: _timestamp_pb2.Timestamp
    worker_id: str
    updated_at: _timestamp_pb2.Timestamp
    quality: _worker_pb2.CameraQuality
    def __init__(self, camera_id: _Optional[str] = ..., status: _Optional[_Union[_worker_pb2.CameraState, str]] = ..., reason: _Optional[str] = ..., last_frame_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., worker_id: _Optional[str] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quality: _Optional[_Union[_worker_pb2.CameraQuality, _Mapping]] = ...) -> None: ...

class CameraRecord(_message.Message):
    __slots__ = ("camera", "enabled", "health", "revision", "created_at", "updated_at")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    camera: _common_pb2.Camera
    enabled: bool
    health: CameraHealth
    revision: int
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, camera: _Optional[_Union[_common_pb2.Camera, _Mapping]] = ..., enabled: _Optional[bool] = ..., health: _Optional[_Union[CameraHealth, _Mapping]] = ..., revision: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CameraChange(_message.Message):
    __slots__ = ("kind", "record", "revision")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[CameraChange.Kind]
        KIND_UPSERT: _ClassVar[CameraChange.Kind]
        KIND_DELETE: _ClassVar[CameraChange.Kind]
    KIND_UNSPECIFIED: CameraChange.Kind
    KIND_UPSERT: CameraChange.Kind
    KIND_DELETE: CameraChange.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    kind: CameraChange.Kind
    record: CameraRecord
    revision: int
    def __init__(self, kind: _Optional[_Union[CameraChange.Kind, str]] = ..., record: _Optional[_Union[CameraRecord, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

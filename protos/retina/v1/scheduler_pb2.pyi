import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from retina.v1 import worker_pb2 as _worker_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DrainWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DrainWorkerResponse(_message.Message):
    __slots__ = ("moved", "unplaced")
    MOVED_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_FIELD_NUMBER: _ClassVar[int]
    moved: _containers.RepeatedScalarFieldContainer[str]
    unplaced: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, moved: _Optional[_Iterable[str]] = ..., unplaced: _Optional[_Iterable[str]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("device_id", "capacity_fps", "memory_mb")
    class CapacityFpsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FPS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    capacity_fps: _containers.ScalarMap[str, float]
    memory_mb: int
    def __init__(self, device_id: _Optional[str] = ..., capacity_fps: _Optional[_Mapping[str, float]] = ..., memory_mb: _Optional[int] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "address", "devices", "decode_capacity", "model_key")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    DECODE_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    MODEL_KEY_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    decode_capacity: float
    model_key: str
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ..., decode_capacity: _Optional[float] = ..., model_key: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("heartbeat_seconds", "lease_seconds", "ignored")
    HEARTBEAT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    IGNORED_FIELD_NUMBER: _ClassVar[int]
    heartbeat_seconds: float
    lease_seconds: float
    ignored: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, heartbeat_seconds: _Optional[float] = ..., lease_seconds: _Optional[float] = ..., ignored: _Optional[_Iterable[str]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "cameras", "device_fps")
    class DeviceFpsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FPS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    cameras: _containers.RepeatedCompositeFieldContainer[_worker_pb2.CameraStatus]
    device_fps: _containers.ScalarMap[str, float]
    def __init__(self, worker_id: _Optional[str] = ..., cameras: _Optional[_Iterable[_Union[_worker_pb2.CameraStatus, _Mapping]]] = ..., device_fps: _Optional[_Mapping[str, float]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeviceStatus(_message.Message):
    __slots__ = ("device_id", "load", "capacity_fps", "analysed_fps", "camera_ids")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LOAD_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FPS_FIELD_NUMBER: _ClassVar[int]
    ANALYSED_FPS_FIELD_NUMBER: _ClassVar[int]
    CAMERA_IDS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    load: float
    capacity_fps: float
    analysed_fps: float
    camera_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, device_id: _Optional[str] = ..., load: _Optional[float] = ..., capacity_fps: _Optional[float] = ..., analysed_fps: _Optional[float] = ..., camera_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "address", "alive", "last_heartbeat", "devices")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIVE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    address: str
    alive: bool
    last_heartbeat: _timestamp_pb2.Timestamp
    devices: _containers.RepeatedCompositeFieldContainer[DeviceStatus]
    def __init__(self, worker_id: _Optional[str] = ..., address: _Optional[str] = ..., alive: _Optional[bool] = ..., last_heartbeat: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., devices: _Optional[_Iterable[_Union[DeviceStatus, _Mapping]]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("camera_id", "worker_id", "device_id", "since", "health")
    CAMERA_ID_FIELD_NUMBER: _ClassVar[int]
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    camera_id: str
    worker_id: str
    device_id: str
    since: _timestamp_pb2.Timestamp
    health: _worker_pb2.CameraStatus
    def __init__(self, camera_id: _Optional[str] = ..., worker_id: _Optional[str] = ..., device_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., health: _Optional[_Union[_worker_pb2.CameraStatus, _Mapping]] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("workers", "assignments", "unplaced", "max_load", "mean_load")
    class UnplacedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_FIELD_NUMBER: _ClassVar[int]
    MAX_LOAD_FIELD_NUMBER: _ClassVar[int]
    MEAN_LOAD_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    unplaced: _containers.ScalarMap[str, str]
    max_load: float
    mean_load: float
    def __init__(self, workers: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., unplaced: _Optional[_Mapping[str, str]] = ..., max_load: _Optional[float] = ..., mean_load: _Optional[float] = ...) -> None: ...

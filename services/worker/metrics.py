"""Prometheus metrics of the analysis worker (every series carries the camera id)."""

from prometheus_client import Counter, Enum, Gauge, Histogram

from retina.services.core.health import CameraState

FRAMES_DECODED = Counter("retina_frames_decoded_total", "Frames decoded", ["camera_id"])
FRAMES_ANALYSED = Counter("retina_frames_analysed_total", "Frames run through detection", ["camera_id"])
FRAMES_DROPPED = Counter(
    "retina_frames_dropped_total", "Sampled frames dropped because analysis fell behind", ["camera_id"]
)
DECODE_ERRORS = Counter("retina_decode_errors_total", "Packets that failed to decode", ["camera_id"])
RECONNECTS = Counter("retina_reconnects_total", "Reconnect attempts", ["camera_id"])
CAMERA_STATE = Enum(
    "retina_camera_state",
    "Camera source state",
    ["camera_id"],
    states=[state.value for state in CameraState],
)
INFERENCE_SECONDS = Histogram(
    "retina_inference_seconds",
    "Detector latency per call",
    buckets=(0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56),
)
BATCH_SIZE = Histogram(
    "retina_inference_batch_size", "Frames per detector call", buckets=(1, 2, 4, 8, 16, 32)
)
INCIDENT_EVENTS = Counter(
    "retina_incident_events_total", "Incident events accepted", ["camera_id", "algorithm", "event"]
)
# The alert latency: from the frame that raised a new (or updated) incident to JetStream's ack of
# the event, i.e. detection, rule, evidence, outbox and publish together. End events are left out:
# a "lost" end is decided on purpose long after the last frame that saw the object.
ALERT_LATENCY = Histogram(
    "retina_alert_latency_seconds",
    "From the frame that raised an incident event to its JetStream ack",
    ["event"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0),
)
# The worker has two outboxes ("incidents", "features"); these series carry its name.
OUTBOX_PENDING = Gauge("retina_outbox_pending", "Messages waiting for a JetStream ack", ["outbox"])
OUTBOX_REFUSED = Counter("retina_outbox_refused_total", "Messages refused: the outbox is full", ["outbox"])
PUBLISHED = Counter("retina_published_total", "Messages acknowledged by JetStream", ["outbox"])
PUBLISH_ERRORS = Counter("retina_publish_errors_total", "Failed publish attempts (retried)", ["outbox"])
PARKED = Counter("retina_outbox_parked_total", "Messages JetStream kept rejecting, parked", ["outbox"])
FEATURE_RECORDS = Counter("retina_feature_records_total", "Track feature records produced", ["camera_id"])
FEATURES_DROPPED = Counter(
    "retina_features_dropped_total", "Feature records dropped: embedding fell behind", ["camera_id"]
)
# Video quality (services/worker/quality.py): per camera and check.
QUALITY_SCORE = Gauge(
    "retina_camera_quality_score", "Latest video-quality score (higher is worse)", ["camera_id", "check"]
)
QUALITY_PROBLEM = Gauge(
    "retina_camera_quality_problem", "1 while the video-quality problem is active", ["camera_id", "check"]
)
RULES_HELD = Gauge(
    "retina_camera_rules_held", "1 while the camera's rules are suspended (moved) or paused", ["camera_id"]
)
QUALITY_SECONDS = Histogram(
    "retina_quality_check_seconds",
    "Time to diagnose one sampled frame (every check)",
    buckets=(0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064),
)
# The motion gate (services/worker/motion.py): which sampled frames went to the detector, and why.
FRAMES_DETECTED = Counter(
    "retina_motion_frames_detected_total",
    "Sampled frames the motion gate sent to the detector (reason: motion, floor, first)",
    ["camera_id", "reason"],
)
FRAMES_SKIPPED = Counter(
    "retina_motion_frames_skipped_total",
    "Sampled frames analysed without the detector (nothing moved; last detections re-used)",
    ["camera_id"],
)
MOTION_SCORE = Gauge(
    "retina_motion_score", "Share of watched pixels changed since the detector's last frame", ["camera_id"]
)

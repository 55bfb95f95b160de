"""A real RTSP server for the tests: Debian's GStreamer RTSP server replaying H.264 files.

Runs under Debian's /usr/bin/python3 (python3-gi does not import in a venv):
    /usr/bin/python3 tests/rtsp_server.py PORT /cam1=/path/a.mp4 [/cam2=/path/b.mp4 ...]
Prints READY when it accepts connections. Access units are replayed without re-encoding, paced
by the clock like a live camera.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    Gst.init(None)
    port, mounts = sys.argv[1], sys.argv[2:]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    points = server.get_mount_points()
    for mount in mounts:
        path, location = mount.split("=", 1)
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
        factory.set_shared(True)
        points.add_factory(path, factory)
    if server.attach(None) == 0:
        raise SystemExit(f"cannot listen on port {port}")
    print("READY", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

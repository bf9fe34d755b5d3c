"""Video files and cameras: reading frames (VideoCapture, with the node's checks), `fer-ros video`
(a recording through the node's pipeline offline: CSV, annotated video, timeline, summary) and the
astronaut clip the demo and the tests use."""

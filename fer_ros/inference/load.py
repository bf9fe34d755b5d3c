"""Engine + pipeline from options: the one way fer_node's configure step, bag-eval, `fer-ros video`
and the Python API build theirs.
"""

import dataclasses
import logging

log = logging.getLogger(__name__)

# fer_node's default for OpenCV's threads (its detect_threads parameter, a ROS-side setting): with
# all cores, OpenCV's workers fight the model's and every other process's for a busy CPU, and the
# background search slows every frame it overlaps (docs/benchmarks.md, "Node").
DETECT_THREADS = 1


def build_pipeline(
    engine_options,
    pipeline_options,
    detect_threads: int = DETECT_THREADS,
    warn=log.warning,
    note=None,
):
    """(engine, pipeline): the engine `engine_options` describe, warmed up, and a pipeline of
    `pipeline_options` over it. OpenCV's thread count is set to `detect_threads` (0: OpenCV's
    default). `warn` gets the engine's warnings (a CPU fallback), `note` the detector choice `auto`
    made. Whatever fails, nothing is left loaded."""
    import cv2

    from fer_ros.inference.engine import Engine
    from fer_ros.inference.pipeline import Pipeline

    if detect_threads:
        cv2.setNumThreads(int(detect_threads))
    engine = Engine.from_options(engine_options, warn=warn)
    try:
        pipeline = Pipeline(engine, pipeline_options)
        if pipeline.detector_note and note is not None:
            note(pipeline.detector_note)
        engine.warmup()
    except BaseException:
        engine.close()
        raise
    return engine, pipeline


def load_pipeline(params: dict, warn=log.warning, note=None):
    """`build_pipeline` from a flat dict of fer_node's parameters (unknown names ignored, values
    checked by their specs before the model is loaded), for the offline doors.

    Offline, frames wait for the pipeline rather than the other way round: the periodic search runs
    inside its frame, so a recording gives the same results on every run and every machine.
    """
    from fer_ros.inference.engine import EngineOptions
    from fer_ros.inference.pipeline import PipelineOptions
    from fer_ros.options import from_params

    pipeline_options = dataclasses.replace(
        from_params(PipelineOptions, params), detect_async=False
    )
    return build_pipeline(
        from_params(EngineOptions, params),
        pipeline_options,
        params.get("detect_threads", DETECT_THREADS),
        warn=warn,
        note=note,
    )

"""Engine + pipeline from a flat dict of fer_node's parameters, the way the node's configure step
builds them: the one place the offline doors (bag-eval, `fer-ros video`, the Python API) get theirs.
"""

import dataclasses
import logging

log = logging.getLogger(__name__)

# fer_node's default for OpenCV's threads (its detect_threads parameter, a ROS-side setting): with
# all cores, OpenCV's workers fight the model's and every other process's for a busy CPU (the
# demo's 640x480 clip spent 75-170 ms a frame in detection instead of 20-30 on a loaded 2-core machine).
DETECT_THREADS = 1


def load_pipeline(params: dict, warn=log.warning, note=None):
    """(engine, pipeline) from node parameters (unknown names ignored, values checked by their specs).

    Offline, frames wait for the pipeline rather than the other way round: the periodic search runs
    inside its frame, so a recording gives the same results on every run and every machine. `warn`
    gets the engine's warnings (a CPU fallback), `note` the detector choice `auto` made. OpenCV's
    thread count is set as the node sets it (`detect_threads`, 1 unless the params say otherwise).
    """
    import cv2

    from fer_ros.inference.engine import Engine, EngineOptions
    from fer_ros.inference.pipeline import Pipeline, PipelineOptions
    from fer_ros.options import from_params

    pipeline_options = from_params(PipelineOptions, params)  # checked before the model is loaded
    threads = params.get("detect_threads", DETECT_THREADS)
    if threads:
        cv2.setNumThreads(int(threads))
    pipeline_options = dataclasses.replace(pipeline_options, detect_async=False)
    engine = Engine.from_options(from_params(EngineOptions, params), warn=warn)
    try:
        pipeline = Pipeline(engine, pipeline_options)
        if pipeline.detector_note and note is not None:
            note(pipeline.detector_note)
        engine.warmup()
    except BaseException:
        engine.close()
        raise
    return engine, pipeline

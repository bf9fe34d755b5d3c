"""Engine + pipeline from a flat dict of fer_node's parameters, the way the node's configure step
builds them: the one place the offline doors (bag-eval, `fer-ros video`, the Python API) get theirs.
"""

import dataclasses
import logging

log = logging.getLogger(__name__)


def load_pipeline(params: dict, warn=log.warning, note=None):
    """(engine, pipeline) from node parameters (unknown names ignored, values checked by their specs).

    Offline, frames wait for the pipeline rather than the other way round: the periodic search runs
    inside its frame, so a recording gives the same results on every run and every machine. `warn`
    gets the engine's warnings (a CPU fallback), `note` the detector choice `auto` made.
    """
    from fer_ros.inference.engine import Engine, EngineOptions
    from fer_ros.inference.pipeline import Pipeline, PipelineOptions
    from fer_ros.options import from_params

    pipeline_options = from_params(PipelineOptions, params)  # checked before the model is loaded
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

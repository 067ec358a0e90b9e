"""`python -m sweep.run +ladder=gpt_small`: tune the proxy, check transfer, warm-start the target.

A thin Hydra entry point: compose and validate the config, run the pipeline, print the summary.
Bad input is one line on stderr and exit status 2, before any job is submitted.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from sweep.config import register_configs
from sweep.edges.launch import LaunchError
from sweep.pipeline import Pipeline, StageError

register_configs()


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    try:
        Pipeline(cfg).run()
    except (ValueError, StageError, LaunchError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()

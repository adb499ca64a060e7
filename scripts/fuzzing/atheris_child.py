"""Run one target under atheris: ``python atheris_child.py TARGET SECONDS SEED CORPUS ARTIFACTS
[MAX_INPUTS]`` (started by ``scripts/fuzz``; libFuzzer exits the process when done).

socksify is imported inside ``atheris.instrument_imports`` so only its own modules carry
coverage probes (instrumenting every loaded module costs seconds and adds noise).
"""

import importlib.util
import os
import sys

import atheris

_SCRIPTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, _SCRIPTS)
if importlib.util.find_spec("socksify") is None:
    sys.path.insert(1, os.path.dirname(_SCRIPTS))  # run from a checkout without installing

with atheris.instrument_imports(include=["socksify"]):
    import socksify.protocol  # noqa: F401
    import socksify.proxy  # noqa: F401
    import socksify.server  # noqa: F401
    from socksify.server import _toml  # noqa: F401

from fuzzing import engines, targets  # noqa: E402


def main() -> None:
    name, seconds, seed, corpus, artifacts = sys.argv[1:6]
    max_inputs = int(sys.argv[6]) if len(sys.argv) > 6 else None
    engines.run_atheris(targets.get(name), seconds=float(seconds), seed=int(seed),
                        corpus_dir=corpus, artifact_dir=artifacts, max_inputs=max_inputs)


if __name__ == "__main__":
    main()

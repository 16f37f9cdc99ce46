"""Stages 1-3 of one layer fused into one compiled loop per lumisection (numba).

The numpy stages (``preprocessing``, ``reconstruction``, ``clustering``) each make a pass over the
whole batch, about nine passes over float32 data per layer. Here one loop per lumisection reads
its raw map from memory once, and everything after that (sum and sign of the counts, removing the cross,
dividing by the reference, the unit-mean scale, clipping, the product with the components, the
exact NNLS over the faces, the reconstruction, the loss and its threshold) runs on buffers of one
map, which stay in the CPU cache. The result is the binarised loss, one uint64 per row (bit j =
column j, as ``clustering.pack_rows``), for the packed clustering that follows.

Same definitions as the numpy stages, in the same precisions (float32 maps and products,
float64 NNLS algebra); only the order of float additions differs, so a bin whose loss lies
within rounding of the threshold may differ (tests compare against the numpy stages).

numba is optional: the serving image ships it (numba 0.58.1), and without it ``PixelNMF``
runs the numpy stages. Compiled on first use, once per process and number of components (5-6 s
in the stand-in serving container; ``PixelNMF.warm_up``, which the handler calls when it loads
the model). Cached to disk only where the caller names a folder for it with numba's own
``NUMBA_CACHE_DIR`` (a test session, the gate's worker: one folder per server-folder content);
unset, as in DIALS, nothing is written anywhere (the server folder is read-only there). The bit packing reads
bytes as a uint64, which assumes a little-endian machine (x86-64, aarch64: what DIALS runs on).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

try:
    import numba
except ImportError:  # the numpy stages serve instead
    numba = None

#: Can the fused loop run here?
AVAILABLE = numba is not None
#: The on-disk compile cache, only when the caller provides its folder (never the server folder).
CACHE_DIR = os.environ.get("NUMBA_CACHE_DIR") or None


def contiguous_runs(index: np.ndarray) -> np.ndarray:
    """(runs, 3) int64 rows (first source position, first kept position, length) of the runs of
    consecutive positions in ``index``: removing the cross copies whole runs (two per kept row),
    which the compiler turns into vector loads instead of a gather."""
    index = np.asarray(index, dtype=np.int64)
    if not index.size:
        return np.zeros((0, 3), dtype=np.int64)
    breaks = np.flatnonzero(np.diff(index) != 1) + 1
    starts = np.concatenate([[0], breaks])
    lengths = np.diff(np.concatenate([starts, [index.size]]))
    return np.stack([index[starts], starts, lengths], axis=1).astype(np.int64)


#: (8 bytes, each 0 or 1, as a little-endian uint64) * PACK_BYTES >> 56 = the byte whose bit i
#: is byte i: every byte lands on its own bit of the top byte and no two products overlap.
PACK_BYTES = 0x0102040810204080

# The loop, as source: a line holding "{k}" is written once per component (k = 0, 1, ...), so
# each component gets its own accumulator and weight. The compiler then keeps them in registers
# and runs the products of all components in one pass over the bins (one pass per component
# with an array of accumulators is several times slower: one dependency chain, reloads).
_FUSED_LOOP = """
def fused(raw, runs, inverse, components, face_inverses, full_face, clip, threshold, n_columns, words, totals, negative,
          ratio, hot, hot_words, products, candidate, weights):
    # ratio, hot (the loss bits, one byte each, rows padded to whole uint64; the padding stays
    # 0), hot_words (hot seen as uint64), products, candidate, weights: scratch buffers from the
    # caller (allocating them here compiled numba's np.zeros/np.empty/view, 1 s of the warm-up).
    n_ls, n_raw = raw.shape
    n_bins = inverse.shape[0]
    n_comp = components.shape[0]
    n_faces = face_inverses.shape[0]
    n_rows = words.shape[1]
    groups = (n_columns + 7) // 8  # bytes per packed row
    padded = groups * 8
    h{k} = components[{k}]
    clip32 = np.float32(clip)
    threshold32 = np.float32(threshold)
    zero32 = np.float32(0.0)
    one32 = np.float32(1.0)
    magic = np.uint64(PACK_BYTES)
    for i in range(n_ls):
        row = raw[i]
        # The total and sign of every count (the cross too: the entries filter counts them
        # all). This pass brings the map into the cache for the next one.
        total = 0
        sign_bits = 0
        for j in range(n_raw):
            total += row[j]
            sign_bits |= row[j]
        totals[i] = total
        if sign_bits < 0:
            negative[i] = True
            for r in range(n_rows):
                words[i, r] = 0
            continue
        # Remove the cross and divide by the reference. Slices, so that every index is a range
        # variable: no negative-index wraparound, which would keep the compiler from
        # vectorising. The empty bins are counted in float32 (exact below 2^24 bins): an
        # integer count beside the float sum halves the speed of this loop.
        ratio_sum = zero32
        n_empty = zero32
        for run in range(runs.shape[0]):
            source, kept, length = runs[run, 0], runs[run, 1], runs[run, 2]
            counts = row[source : source + length]
            inverse_run = inverse[kept : kept + length]
            ratio_run = ratio[kept : kept + length]
            for t in range(length):
                value = np.float32(counts[t]) * inverse_run[t]
                ratio_run[t] = value
                ratio_sum += value
                n_empty += one32 if value == zero32 else zero32
        # The unit-mean scale, applied where the ratio is read (stage 1).
        scale = np.float32((n_bins - np.float64(n_empty)) / np.float64(ratio_sum)) if ratio_sum > zero32 else one32
        # b = x H^T in float32 (stage 2), x being what the NMF sees: the unit-mean map clipped,
        # its empty bins set to 1.
        b{k} = zero32
        for j in range(n_bins):
            value = ratio[j] * scale
            x = one32 if value == zero32 else min(value, clip32)
            b{k} += x * h{k}[j]
        products[{k}] = b{k}
        for c in range(n_comp):
            weights[c] = 0.0
        # The exact NNLS: the feasible face solution with the largest w . b (none, w = 0, when
        # no score is positive). When the solution on all components is feasible it is that
        # one (no subset fits better), which spares the other faces for most maps.
        best = 0.0
        for attempt in range(n_faces + 1):
            face = full_face if attempt == 0 else attempt - 1
            if face < 0 or (attempt > 0 and face == full_face):
                continue
            feasible = True
            score = 0.0
            for c in range(n_comp):
                value64 = 0.0
                for e in range(n_comp):
                    value64 += face_inverses[face, c, e] * products[e]
                candidate[c] = value64
                feasible = feasible and value64 >= 0.0
                score += value64 * products[c]
            if feasible and score > best:
                best = score
                for c in range(n_comp):
                    weights[c] = candidate[c]
            if attempt == 0 and best > 0.0:
                break
        w{k} = np.float32(weights[{k}])
        # The reconstruction w H in float32, the loss (preprocessed - reconstruction)^2 and its
        # threshold (stage 3): one byte per bin, then eight bytes become eight bits at once.
        if padded == n_columns:
            for j in range(n_bins):
                recon = zero32
                recon += w{k} * h{k}[j]
                difference = ratio[j] * scale - recon
                hot[j] = difference * difference > threshold32
        else:
            for r in range(n_rows):
                for column in range(n_columns):
                    j = r * n_columns + column
                    recon = zero32
                    recon += w{k} * h{k}[j]
                    difference = ratio[j] * scale - recon
                    hot[r * padded + column] = difference * difference > threshold32
        for r in range(n_rows):
            word = np.uint64(0)
            for g in range(groups):
                byte = (hot_words[r * groups + g] * magic) >> np.uint64(56)
                word |= byte << np.uint64(8 * g)
            words[i, r] = word
"""


def fused_loop_source(n_components: int) -> str:
    """The loop's source for ``n_components`` components (lines with "{k}" repeated per component)."""
    lines = []
    for line in _FUSED_LOOP.splitlines():
        if "{k}" in line:
            lines += [line.replace("{k}", str(k)) for k in range(n_components)]
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


_COMPILED = {}


def _loop_source_file(cache_dir: Path, n_components: int, source: str) -> Path:
    """The generated loop's source file in the cache folder: numba caches only functions with a
    source file, and reuses its cache only while the file's stamp (modification time and size)
    is the one it recorded. The time is set from the source's own hash, so a cache folder copied
    without the file (the gate's worker keeps numba's .nbi/.nbc files only) finds its loop again,
    and another source never gets the stamp of this one."""
    path = cache_dir / f"pixelnmf_fused_loop_{n_components}.py"
    if not path.is_file() or path.read_text() != source:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    stamp = 1_000_000_000 + int(hashlib.sha256(source.encode()).hexdigest()[:6], 16)
    if path.stat().st_mtime != stamp:
        os.utime(path, (stamp, stamp))
    return path


def _fused_loop(n_components: int):
    """The compiled fused loop for this many components (compiled once per process)."""
    found = _COMPILED.get(n_components)
    if found is None:
        # __name__: the loop belongs to this module (numba imports it to reload a cached loop).
        namespace = {"np": np, "PACK_BYTES": PACK_BYTES, "__name__": __name__}
        source = fused_loop_source(n_components)
        filename = f"<pixelnmf fused loop, {n_components} components>"
        if CACHE_DIR:
            filename = str(_loop_source_file(Path(CACHE_DIR), n_components, source))
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - our own template
        # reassoc lets the sums and products run in vector lanes; contract allows fused
        # multiply-adds (as the BLAS of the numpy stages uses). No flag that assumes no NaN/inf.
        # no_cfunc_wrapper: only Python calls it, and each wrapper costs compile time at load.
        found = numba.njit(
            nogil=True, fastmath={"reassoc", "contract"}, error_model="numpy", no_cfunc_wrapper=True, cache=bool(CACHE_DIR)
        )(namespace["fused"])
        _COMPILED[n_components] = found
    return found


def _popcount(word):
    """Set bits of a uint64 (SWAR: pairs, nibbles, bytes, then one multiply sums the bytes)."""
    word = word - ((word >> np.uint64(1)) & np.uint64(0x5555555555555555))
    word = (word & np.uint64(0x3333333333333333)) + ((word >> np.uint64(2)) & np.uint64(0x3333333333333333))
    word = (word + (word >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (word * np.uint64(0x0101010101010101)) >> np.uint64(56)


def _low_bits(n):
    """A uint64 with its n lowest bits set (n <= 64; a shift by 64 is undefined)."""
    return ~np.uint64(0) if n >= 64 else (np.uint64(1) << np.uint64(n)) - np.uint64(1)


def _add_one_saturating(planes, bits):
    """planes[k] = "count >= k + 1", per bit; add 1 where ``bits`` is set (saturating)."""
    for k in range(planes.shape[0] - 1, 0, -1):
        planes[k] |= planes[k - 1] & bits
    planes[0] |= bits


#: The compiled clustering keeps its saturated counts in two scalars: windows may miss 0 or 1 bin
#: (the model's default is 1). Other values run the numpy clustering.
MAX_MISSES_COMPILED = 1


def _cover_windows(rows, first_row, anchors, height, width, all_columns):
    """Set every bin of the height x width windows anchored (top-left) at the bits of
    ``anchors`` in row ``first_row``."""
    spread = np.uint64(0)
    for shift in range(width):
        spread |= anchors << np.uint64(shift)
    for below in range(height):
        rows[first_row + below] |= spread & all_columns


def _cluster_rows(rows, out, n_columns, height, width, max_misses, at_least_one, at_least_two):
    """``clustering.cluster_words`` for the rows of one map (``max_misses`` 0 or 1): ``out`` =
    every bin of the windows (height x width) with at most ``max_misses`` unset bins. The count
    of unset bins per window, saturated at 2, is two bit planes ("at least one", "at least two");
    runs of columns are counted by doubling (1, 2, 4, ... columns), as the numpy version does."""
    n_rows = rows.shape[0]
    all_columns = _low_bits(n_columns)
    for r in range(n_rows):
        out[r] = 0
    if height > n_rows or width > n_columns:
        return
    anchor_columns = _low_bits(n_columns - width + 1)
    for r in range(n_rows):
        run_one, run_two = ~rows[r] & all_columns, np.uint64(0)  # the run of width 1
        one, two = np.uint64(0), np.uint64(0)
        offset, run_width, remaining, started = 0, 1, width, False
        while remaining:
            if remaining & 1:
                piece_one, piece_two = run_one >> np.uint64(offset), run_two >> np.uint64(offset)
                if started:
                    two = two | piece_two | (one & piece_one)
                    one = one | piece_one
                else:
                    one, two, started = piece_one, piece_two, True
                offset += run_width
            remaining >>= 1
            if remaining:
                next_one, next_two = run_one >> np.uint64(run_width), run_two >> np.uint64(run_width)
                run_two = run_two | next_two | (run_one & next_one)
                run_one = run_one | next_one
                run_width *= 2
        at_least_one[r], at_least_two[r] = one, two
    for r in range(n_rows - height + 1):
        one, two = at_least_one[r], at_least_two[r]
        for below in range(1, height):
            two = two | at_least_two[r + below] | (one & at_least_one[r + below])
            one = one | at_least_one[r + below]
        anchors = ~(two if max_misses == 1 else one) & anchor_columns
        if anchors:
            _cover_windows(out, r, anchors, height, width, all_columns)


def _cluster_combine_flag(
    loss_words, offsets, n_columns, height, width, max_misses, first_rows, last_rows, required, blocks, evaluated, flag, metric,
    clustered, at_least_one, at_least_two, layer_planes, combined, covered,
):  # fmt: skip
    """Stages 3 (clustering), 4 (combination) and 5 (flagging) per LS on packed rows: the
    layers' loss words side by side in ``loss_words`` (N, all layers' rows; layer l at
    offsets[l]:offsets[l + 1]); ``first_rows``/``last_rows`` (layers, grid rows) the source rows
    overlapping each grid row; ``required`` (layers, grid rows) the bins needing exactly k + 1
    layers; ``blocks`` (B, 2) the flagging blocks. Writes ``flag`` and ``metric``. The last six
    arguments are uint64 scratch buffers from the caller (``_cluster_buffers``)."""
    n_ls = loss_words.shape[0]
    n_layers = offsets.shape[0] - 1
    n_grid_rows = required.shape[1]
    all_columns = _low_bits(n_columns)
    for i in range(n_ls):
        flag[i] = False
        metric[i] = 0.0
        if not evaluated[i]:
            continue
        for layer in range(n_layers):
            begin, end = offsets[layer], offsets[layer + 1]
            _cluster_rows(
                loss_words[i, begin:end], clustered[begin:end], n_columns, height, width, max_misses, at_least_one, at_least_two
            )
        # Per grid row: how many layers are set (saturating), against the layers required.
        for t in range(n_grid_rows):
            for k in range(n_layers):
                layer_planes[t, k] = 0
            for layer in range(n_layers):
                rebinned = np.uint64(0)
                for source in range(first_rows[layer, t], last_rows[layer, t] + 1):
                    rebinned |= clustered[offsets[layer] + source]
                _add_one_saturating(layer_planes[t], rebinned)
            combined[t] = 0
            for k in range(n_layers):
                combined[t] |= layer_planes[t, k] & required[k, t]
            covered[t] = 0
        # Flagging: every bin of a fully set block of one of the given shapes.
        for b in range(blocks.shape[0]):
            block_height, block_width = blocks[b, 0], blocks[b, 1]
            if block_height > n_grid_rows or block_width > n_columns:
                continue
            anchor_columns = _low_bits(n_columns - block_width + 1)
            for t in range(n_grid_rows - block_height + 1):
                anchors = anchor_columns
                for below in range(block_height):
                    for shift in range(block_width):
                        anchors &= combined[t + below] >> np.uint64(shift)
                if anchors:
                    _cover_windows(covered, t, anchors, block_height, block_width, all_columns)
        area = 0
        for t in range(n_grid_rows):
            area += _popcount(covered[t])
        flag[i] = area > 0
        metric[i] = np.float32(area)


if AVAILABLE:
    # The helpers are called only from compiled code: no Python or C wrappers to compile (the
    # compile happens while the server loads the model; wrappers and allocations inside
    # compiled code were about 40 % of it).
    _helper = numba.njit(no_cpython_wrapper=True, no_cfunc_wrapper=True, cache=bool(CACHE_DIR))
    _popcount = _helper(_popcount)
    _low_bits = _helper(_low_bits)
    _add_one_saturating = _helper(_add_one_saturating)
    _cover_windows = _helper(_cover_windows)
    _cluster_rows = _helper(_cluster_rows)
    _cluster_combine_flag = numba.njit(nogil=True, no_cfunc_wrapper=True, cache=bool(CACHE_DIR))(_cluster_combine_flag)


def cluster_combine_flag(loss_words, offsets, n_columns, window, max_misses, first_rows, last_rows, required, blocks, evaluated):
    """Stages 3-5 on the layers' loss words: (flag (N,) bool, metric (N,) float32); the same
    answers as ``clustering.cluster_words``, ``combination.combine_words`` and
    ``flagging.flag_and_score_words``. Rows of at most 64 columns."""
    if not AVAILABLE:
        raise RuntimeError("numba is not importable here; use the numpy stages")
    if not 0 <= max_misses <= MAX_MISSES_COMPILED:
        raise ValueError(f"max_misses {max_misses}: the compiled clustering takes 0..{MAX_MISSES_COMPILED}")
    n_ls = loss_words.shape[0]
    flag = np.zeros(n_ls, dtype=bool)
    metric = np.zeros(n_ls, dtype=np.float32)
    _cluster_combine_flag(
        loss_words, offsets, int(n_columns), int(window[0]), int(window[1]), int(max_misses),
        first_rows, last_rows, required, blocks, evaluated, flag, metric, *_cluster_buffers(offsets, required),
    )  # fmt: skip
    return flag, metric


def _cluster_buffers(offsets, required):
    """Scratch buffers of ``_cluster_combine_flag`` (allocated here: allocating them in the
    compiled function compiled numba's np.zeros for each shape, about 1 s of the warm-up)."""
    rows_per_layer = np.diff(offsets)
    most_rows = int(rows_per_layer.max()) if rows_per_layer.size else 0
    n_layers, n_grid_rows = len(offsets) - 1, required.shape[1]
    return (
        np.zeros(int(offsets[-1]), dtype=np.uint64),  # clustered
        np.zeros(most_rows, dtype=np.uint64),  # at_least_one
        np.zeros(most_rows, dtype=np.uint64),  # at_least_two
        np.zeros((n_grid_rows, n_layers), dtype=np.uint64),  # layer_planes
        np.zeros(n_grid_rows, dtype=np.uint64),  # combined
        np.zeros(n_grid_rows, dtype=np.uint64),  # covered
    )


def layer_loss_bits(raw_flat, runs, inverse, components, face_inverses, full_face, clip, threshold, n_rows, n_columns):
    """Run the fused loop on a batch (``raw_flat``: (N, raw bins) int32, C-contiguous).

    Returns (words (N, n_rows) uint64, totals (N,) int64, negative (N,) bool).
    """
    if not AVAILABLE:
        raise RuntimeError("numba is not importable here; use the numpy stages")
    n_ls = raw_flat.shape[0]
    words = np.zeros((n_ls, n_rows), dtype=np.uint64)
    totals = np.zeros(n_ls, dtype=np.int64)
    negative = np.zeros(n_ls, dtype=bool)
    n_components = components.shape[0]
    hot = np.zeros(n_rows * ((n_columns + 7) // 8) * 8, dtype=np.uint8)  # rows padded to whole uint64
    _fused_loop(n_components)(
        raw_flat,
        runs,
        inverse,
        components,
        face_inverses,
        int(full_face),
        float(clip),
        float(threshold),
        n_columns,
        words,
        totals,
        negative,
        np.empty(inverse.shape[0], dtype=np.float32),  # ratio
        hot,
        hot.view(np.uint64),
        np.empty(n_components, dtype=np.float64),  # products
        np.empty(n_components, dtype=np.float64),  # candidate
        np.empty(n_components, dtype=np.float64),  # weights
    )
    return words, totals, negative

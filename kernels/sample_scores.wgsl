// SampleAttention stages 1 + 2 (../shared/SAMPLE_ATTENTION.md): the sampled rows' Q_s K^T as two
// GEMM-shaped kernels, SMODE 0 (rows) and SMODE 1 (cols), shaped like the prefill GEMM:
//   - both operands stream through workgroup memory DK floats of headDim at a time, stored
//     transposed: xs[d][q] is the vec4 of 4 consecutive tile rows (4q .. 4q + 3) at dim d, so one
//     k step of the RX x RY register block costs RX / 4 + RY / 4 vec4 reads for RX * RY FMAs
//     (8 x 8: 4 reads, 64 FMAs);
//   - every loop below has a constant trip count (the header's tile consts): unrolled, its
//     workgroup-memory indices and register indices are constants, so the accumulators stay in
//     registers and Tint's robustness clamps fold;
//   - the next chunk of both operands is loaded into registers during the math of the current one
//     (prefetch); DB 0: one workgroup-memory buffer, two barriers per chunk; DB 1: two buffers
//     (xs0/ys0, xs1/ys1, chunk pairs unrolled), one barrier per chunk (NCH even);
//   - tiles that need no mask (SMODE 0: every key of the tile below every row and outside every
//     row's window; SMODE 1: every row of the tile leaves every column outside its window, no
//     padding rows) take an unmasked epilogue.
// SMODE 0 (rows): a workgroup owns BS (row, head) pairs of one KV group (X: q rows, scaled) and
// loops over K tiles of BT keys (Y) up to its last row: online (max, sum, window sum) per row.
// SMODE 1 (cols): a workgroup owns BS key columns (X: K rows) and loops over the group's
// (head, row) stream (Y: q rows) from the first row that reaches them (kStart), BT rows per tile,
// tiles straddling heads; per-head column sums in registers (GROUP x RX), reduced over the TY
// threads at the end.
// Workgroup: NT = TX * TY threads (TX = BS / RX, TY = BT / RY); a thread owns X rows
// 4 (xi + TX i4) + c (i4 < RX / 4, c < 4) and Y rows 4 (yi + TY j4) + c; GX x GY thread blocks.
// Loads: the BS x DK4 (BT x DK4) vec4 units of a chunk are PX (PY) slots of NT threads; with DK4
// even, 2 adjacent lanes take the 2 vec4 of a row's 32-byte sector and 16 rows fill a warp
// (transposed stores hit 32 distinct banks with the odd vec4 row stride XQ, YQ).
// Dispatch: SMODE 0 (ceil(nSamp * group / BS), nKvHeads, nSplit), heaviest first, partials +
// sample_scores_combine.wgsl when nSplit > 1; SMODE 1 (ceil(nCols / BS), nKvHeads, 1).
// Tiles (kernels/sample_scores.ts scorePlan): 128 x 128, 8 x 8 per thread, DK 16 on GPUs;
// 16 x 16, 4 x 4, DK 8 on software adapters.
// Precision: f32 loads (f16 KV unpacked in load_k4), f32 FMA accumulation, exp2.
//
// Generated header (kernels/attention_prefill.ts attentionHeader + sample_scores.ts): const
// HEAD_DIM, GROUP, BS, BT, RX, RY, TX, TY, NT, DK, DK4, NCH, XQ, YQ, GX, GY, DB, DK1, PX, PY
// (they size arrays, which WGSL cannot size by an override outside workgroup memory), the Params
// uniform at 6, kc at 1 with load_k4, q at 0 with load_q4.
// Bindings:
//   q:           (rows, nHeads * HEAD_DIM) f32, RoPE applied
//   kc:          (nKvHeads, capacity, HEAD_DIM) f32 or f16 pairs
//   rowStats:    (nHeads, nSamp, 2) f32: lse (log2 units), window mass (SMODE 0 writes, 1 reads)
//   colScores:   (nHeads, capacity) f32, columns [0, nCols) written (SMODE 1)
//   groupScores: (nKvHeads, capacity) f32, columns [0, nCols) written (SMODE 1)
//   partials:    (nSplit, nHeads, nSamp) vec4 f32 (max, sum, window sum, 0) (SMODE 0, nSplit > 1)

override SMODE: u32 = 0u;

@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>;
@group(0) @binding(4) var<storage, read_write> colScores: array<f32>;
@group(0) @binding(5) var<storage, read_write> groupScores: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<vec4<f32>>;

const NEG_INF: f32 = -3.0e38;

var<workgroup> xs0: array<array<vec4<f32>, XQ>, DK>;  // [DK][BS / 4 (+1 pad)]: 4 X rows at one dim
var<workgroup> ys0: array<array<vec4<f32>, YQ>, DK>;  // [DK][BT / 4 (+1 pad)]: 4 Y rows at one dim
var<workgroup> xs1: array<array<vec4<f32>, XQ>, DK1>; // DB 1: the second buffers (DK1 = DK, else 1)
var<workgroup> ys1: array<array<vec4<f32>, YQ>, DK1>;
var<workgroup> red: array<f32, TY * BS>;            // end: the TY partials of each X row
var<workgroup> mrow: array<f32, BS>;                // SMODE 0 end: each row's max
var<workgroup> ipos: array<u32, BS>;                // SMODE 0: each row's absolute position
// SMODE 1, [2][BT] by tile parity (DB 1 writes tile it + 1's while tile it's epilogue may still read):
var<workgroup> ypos: array<u32, 2 * BT>;            // absolute positions of the tile's rows (0 past the stream)
var<workgroup> ylse: array<f32, 2 * BT>;            // their lse
var<workgroup> yhead: array<u32, 2 * BT>;           // their head in the group

struct Job {
  kvh: u32,
  iMax: u32,   // SMODE 0: last key any row of the workgroup sees
  kStart: u32, // SMODE 1: first sampled row that reaches the workgroup's columns
  nR: u32,     // SMODE 1: sampled rows per head from kStart
}

struct RowMeta { pos: u32, lse: f32, head: u32 }

// One thread's registers: operand load slots, the RX x RY scores, the row / column sums.
struct Thread {
  xi: u32, yi: u32,
  xr: array<u32, PX>, xd: array<u32, PX>, xok: array<bool, PX>, xo: array<u32, PX>, px: array<vec4<f32>, PX>,
  yr: array<u32, PY>, yd: array<u32, PY>, yok: array<bool, PY>, yo: array<u32, PY>, py: array<vec4<f32>, PY>,
  acc: array<array<f32, RY>, RX>,
  m: array<f32, RX>,                   // SMODE 0: running max
  l: array<f32, RX>,                   // SMODE 0: running sum; SMODE 1: the current head's column sums
  lw: array<f32, RX>,                  // SMODE 0: running window sum
  jc: array<u32, RX>,                  // SMODE 1: the thread's columns
  lh: array<array<f32, RX>, GROUP>,    // SMODE 1: column sums of the heads done
  curG: u32,                           // SMODE 1: head of `l`
}

fn q_off(k: u32, head: u32) -> u32 {
  return sample_row(k) * p.nHeads * HEAD_DIM + head * HEAD_DIM;
}

// X row r / Y row c of the thread's register block (tile-local).
fn xrow(xi: u32, r: u32) -> u32 { return 4u * xi + 4u * TX * (r / 4u) + r % 4u; }
fn ycol(yi: u32, c: u32) -> u32 { return 4u * yi + 4u * TY * (c / 4u) + c % 4u; }

// Load unit of slot s of a tile of `rows` rows: (row, vec4 index in the chunk).
fn unit_row(lid: u32, s: u32, rows: u32) -> u32 {
  let u = lid + NT * s;
  if (DK4 % 2u == 0u) { return (u >> 1u) % rows; }
  return u % rows;
}
fn unit_d4(lid: u32, s: u32, rows: u32) -> u32 {
  let u = lid + NT * s;
  if (DK4 % 2u == 0u) { return (u & 1u) + 2u * (u / (2u * rows)); }
  return u / rows;
}

// SMODE 1: q offset of row t of Y tile `it` of the flat (head, row) stream (clamped into it).
fn y_q_off(job: Job, it: u32, t: u32) -> u32 {
  let kk = min(it * BT + t, p.group * job.nR - 1u);
  return q_off(job.kStart + kk % job.nR, job.kvh * p.group + kk / job.nR);
}

fn row_meta(job: Job, it: u32, t: u32) -> RowMeta {
  let kk = it * BT + t;
  let ok = kk < p.group * job.nR;
  let g = min(kk / max(job.nR, 1u), p.group - 1u);
  let k = min(job.kStart + kk % max(job.nR, 1u), p.nSamp - 1u);
  return RowMeta(select(0u, p.pos + sample_row(k), ok), rowStats[((job.kvh * p.group + g) * p.nSamp + k) * 2u], g);
}

// First sampled row k with pos + sample_row(k) >= j (sample_row ascends).
fn first_row_from(j: u32) -> u32 {
  var lo = 0u;
  var hi = p.nSamp;
  loop {
    if (lo >= hi) { break; }
    let mid = (lo + hi) / 2u;
    if (p.pos + sample_row(mid) >= j) { hi = mid; } else { lo = mid + 1u; }
  }
  return lo;
}

// Y source offsets of tile itN (SMODE 0: K rows up to the last key; SMODE 1: the q stream).
fn y_offsets(th: ptr<function, Thread>, job: Job, itN: u32) {
  for (var s = 0u; s < PY; s++) {
    if (SMODE == 0u) {
      (*th).yo[s] = job.kvh * p.capacity + min(itN * BT + (*th).yr[s], job.iMax);
    } else {
      (*th).yo[s] = y_q_off(job, itN, (*th).yr[s]);
    }
  }
}

// Chunk chN of both operands into registers (q rows pre-scaled so scores are in log2 units).
fn load_chunk(th: ptr<function, Thread>, chN: u32) {
  for (var s = 0u; s < PX; s++) {
    if ((*th).xok[s]) {
      let d4 = chN * DK4 + (*th).xd[s];
      if (SMODE == 0u) { (*th).px[s] = load_q4((*th).xo[s], d4) * p.scale; } else { (*th).px[s] = load_k4((*th).xo[s], d4); }
    }
  }
  for (var s = 0u; s < PY; s++) {
    if ((*th).yok[s]) {
      let d4 = chN * DK4 + (*th).yd[s];
      if (SMODE == 0u) { (*th).py[s] = load_k4((*th).yo[s], d4); } else { (*th).py[s] = load_q4((*th).yo[s], d4) * p.scale; }
    }
  }
}

// The registers into buffer 0 / 1, transposed (4 dims of a unit to 4 rows of the [DK] array).
fn store_chunk0(th: ptr<function, Thread>) {
  for (var s = 0u; s < PX; s++) {
    if ((*th).xok[s]) {
      let q = (*th).xr[s] >> 2u;
      let c = (*th).xr[s] & 3u;
      let d = 4u * (*th).xd[s];
      for (var k = 0u; k < 4u; k++) { xs0[d + k][q][c] = (*th).px[s][k]; }
    }
  }
  for (var s = 0u; s < PY; s++) {
    if ((*th).yok[s]) {
      let q = (*th).yr[s] >> 2u;
      let c = (*th).yr[s] & 3u;
      let d = 4u * (*th).yd[s];
      for (var k = 0u; k < 4u; k++) { ys0[d + k][q][c] = (*th).py[s][k]; }
    }
  }
}
fn store_chunk1(th: ptr<function, Thread>) {
  for (var s = 0u; s < PX; s++) {
    if ((*th).xok[s]) {
      let q = (*th).xr[s] >> 2u;
      let c = (*th).xr[s] & 3u;
      let d = 4u * (*th).xd[s];
      for (var k = 0u; k < 4u; k++) { xs1[d + k][q][c] = (*th).px[s][k]; }
    }
  }
  for (var s = 0u; s < PY; s++) {
    if ((*th).yok[s]) {
      let q = (*th).yr[s] >> 2u;
      let c = (*th).yr[s] & 3u;
      let d = 4u * (*th).yd[s];
      for (var k = 0u; k < 4u; k++) { ys1[d + k][q][c] = (*th).py[s][k]; }
    }
  }
}

fn zero_acc(th: ptr<function, Thread>) {
  for (var r = 0u; r < RX; r++) { for (var c = 0u; c < RY; c++) { (*th).acc[r][c] = 0.0; } }
}

// acc += X Y^T over the DK dims of buffer 0 / 1.
fn dot_chunk0(th: ptr<function, Thread>) {
  for (var k = 0u; k < DK; k++) {
    var x: array<vec4<f32>, RX / 4u>;
    var y: array<vec4<f32>, RY / 4u>;
    for (var i = 0u; i < RX / 4u; i++) { x[i] = xs0[k][(*th).xi + TX * i]; }
    for (var j = 0u; j < RY / 4u; j++) { y[j] = ys0[k][(*th).yi + TY * j]; }
    for (var r = 0u; r < RX; r++) {
      for (var c = 0u; c < RY; c++) { (*th).acc[r][c] = fma(x[r / 4u][r % 4u], y[c / 4u][c % 4u], (*th).acc[r][c]); }
    }
  }
}
fn dot_chunk1(th: ptr<function, Thread>) {
  for (var k = 0u; k < DK; k++) {
    var x: array<vec4<f32>, RX / 4u>;
    var y: array<vec4<f32>, RY / 4u>;
    for (var i = 0u; i < RX / 4u; i++) { x[i] = xs1[k][(*th).xi + TX * i]; }
    for (var j = 0u; j < RY / 4u; j++) { y[j] = ys1[k][(*th).yi + TY * j]; }
    for (var r = 0u; r < RX; r++) {
      for (var c = 0u; c < RY; c++) { (*th).acc[r][c] = fma(x[r / 4u][r % 4u], y[c / 4u][c % 4u], (*th).acc[r][c]); }
    }
  }
}

// SMODE 0, after the last chunk of K tile `it`: online (max, sum, window sum) of each row over
// the tile's keys; unmasked when the tile lies below and outside every row's window.
fn rows_epilogue(th: ptr<function, Thread>, it: u32, iMin: u32) {
  let k0 = it * BT;
  if (k0 + BT - 1u + p.window <= iMin) {
    for (var r = 0u; r < RX; r++) {
      var tm = (*th).acc[r][0];
      for (var c = 1u; c < RY; c++) { tm = max(tm, (*th).acc[r][c]); }
      if (tm > (*th).m[r]) { let corr = exp2((*th).m[r] - tm); (*th).l[r] *= corr; (*th).lw[r] *= corr; (*th).m[r] = tm; }
      var e = 0.0;
      for (var c = 0u; c < RY; c++) { e += exp2((*th).acc[r][c] - (*th).m[r]); }
      (*th).l[r] += e;
    }
  } else {
    for (var r = 0u; r < RX; r++) {
      let i = ipos[xrow((*th).xi, r)];
      var tm = NEG_INF;
      for (var c = 0u; c < RY; c++) { tm = max(tm, select(NEG_INF, (*th).acc[r][c], k0 + ycol((*th).yi, c) <= i)); }
      if (tm > (*th).m[r]) { let corr = exp2((*th).m[r] - tm); (*th).l[r] *= corr; (*th).lw[r] *= corr; (*th).m[r] = tm; }
      for (var c = 0u; c < RY; c++) {
        let kj = k0 + ycol((*th).yi, c);
        let e = select(0.0, exp2((*th).acc[r][c] - (*th).m[r]), kj <= i);
        (*th).l[r] += e;
        (*th).lw[r] += select(0.0, e, kj + p.window > i);
      }
    }
  }
}

// SMODE 1: the row of Y column c belongs to head hd: on a new head, `l` goes to the sums of the
// head it held (constant indices after unrolling: registers, no indexed spill).
fn switch_head(th: ptr<function, Thread>, hd: u32) {
  if (hd == (*th).curG) { return; }
  for (var g = 0u; g < GROUP; g++) {
    if ((*th).curG == g) { for (var r = 0u; r < RX; r++) { (*th).lh[g][r] += (*th).l[r]; } }
  }
  for (var r = 0u; r < RX; r++) { (*th).l[r] = 0.0; }
  (*th).curG = hd;
}

// SMODE 1, after the last chunk of Y tile `it`: P = exp2(s - lse) of the rows whose window leaves
// the column out, into the current head's sums; unmasked when no padding row and no row of a
// head's first nSlow (window still on a column) is in the tile.
fn cols_epilogue(th: ptr<function, Thread>, job: Job, it: u32, nSlow: u32) {
  let a0 = it * BT;
  let b0 = a0 + BT - 1u;
  let fast = b0 < p.group * job.nR && a0 % job.nR >= nSlow && (b0 / job.nR == a0 / job.nR || nSlow == 0u);
  let mo = (it & 1u) * BT; // the tile's row metadata
  if (fast) {
    for (var c = 0u; c < RY; c++) {
      let t = mo + ycol((*th).yi, c);
      switch_head(th, yhead[t]);
      let lse = ylse[t];
      for (var r = 0u; r < RX; r++) { (*th).l[r] += exp2((*th).acc[r][c] - lse); }
    }
  } else {
    for (var c = 0u; c < RY; c++) {
      let t = mo + ycol((*th).yi, c);
      switch_head(th, yhead[t]);
      let lse = ylse[t];
      let i = ypos[t];
      for (var r = 0u; r < RX; r++) { (*th).l[r] += select(0.0, exp2((*th).acc[r][c] - lse), (*th).jc[r] + p.window <= i); }
    }
  }
}

fn epilogue(th: ptr<function, Thread>, job: Job, it: u32, iMin: u32, nSlow: u32) {
  if (SMODE == 0u) { rows_epilogue(th, it, iMin); } else { cols_epilogue(th, job, it, nSlow); }
}

// SMODE 1: tile it's row metadata into its parity slot.
fn store_meta(lid: u32, it: u32, pm: RowMeta) {
  let at = (it & 1u) * BT + lid;
  ypos[at] = pm.pos;
  ylse[at] = pm.lse;
  yhead[at] = pm.head;
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  var th: Thread;
  // Thread position: lx + GX * (ly + GY * (wx + (TX / GX) * wy)).
  th.xi = lid % GX + GX * ((lid / (GX * GY)) % (TX / GX));
  th.yi = (lid / GX) % GY + GY * (lid / (TX * GY));
  var job = Job(wg.y, 0u, 0u, 0u);
  let nAll = p.nSamp * p.group;
  var t0 = 0u;   // SMODE 0: first (row, head) pair of the workgroup
  var iMin = 0u; // SMODE 0: position of its first row
  var j0 = 0u;   // SMODE 1: first column
  var nSlow = 0u; // SMODE 1: rows per head (from kStart) whose window still covers a column of the workgroup
  var fBeg = 0u; // flat chunks [fBeg, fEnd) of this workgroup (tile f / NCH, headDim chunk f % NCH)
  var fEnd = 0u;
  if (SMODE == 0u) {
    t0 = ((nAll + BS - 1u) / BS - 1u - wg.x) * BS;
    job.iMax = p.pos + sample_row(min(nAll - 1u, t0 + BS - 1u) / p.group);
    iMin = p.pos + sample_row(t0 / p.group);
    let nIt = job.iMax / BT + 1u;
    // Split z of nwg.z: K tiles [z * per, (z + 1) * per).
    let per = (nIt + nwg.z - 1u) / nwg.z;
    fBeg = min(nIt, wg.z * per) * NCH;
    fEnd = min(nIt, wg.z * per + per) * NCH;
  } else {
    j0 = wg.x * BS;
    job.kStart = first_row_from(j0 + p.window);
    job.nR = p.nSamp - job.kStart;
    nSlow = first_row_from(j0 + BS - 1u + p.window) - job.kStart;
    fEnd = ((p.group * job.nR + BT - 1u) / BT) * NCH;
  }

  // Load slots and the fixed X source offsets (SMODE 0: the scaled q rows of its pairs; 1: K columns).
  for (var s = 0u; s < PX; s++) {
    th.xr[s] = unit_row(lid, s, BS);
    th.xd[s] = unit_d4(lid, s, BS);
    th.xok[s] = lid + NT * s < BS * DK4;
    if (SMODE == 0u) {
      let xu = min(t0 + th.xr[s], nAll - 1u);
      th.xo[s] = q_off(xu / p.group, job.kvh * p.group + xu % p.group);
    } else {
      th.xo[s] = job.kvh * p.capacity + min(j0 + th.xr[s], max(p.nCols, 1u) - 1u);
    }
  }
  for (var s = 0u; s < PY; s++) {
    th.yr[s] = unit_row(lid, s, BT);
    th.yd[s] = unit_d4(lid, s, BT);
    th.yok[s] = lid + NT * s < BT * DK4;
  }
  for (var r = 0u; r < RX; r++) {
    th.m[r] = NEG_INF;
    th.jc[r] = j0 + xrow(th.xi, r);
  }
  // SMODE 0: row positions in workgroup memory (read by masked tiles only; fewer registers).
  if (SMODE == 0u && lid < BS) { ipos[lid] = p.pos + sample_row(min(t0 + lid, nAll - 1u) / p.group); }

  // First chunk (fBeg is a tile's chunk 0) into registers; SMODE 1 also the tile's row metadata.
  var pm = RowMeta(0u, 0.0, 0u);
  if (fBeg < fEnd) {
    y_offsets(&th, job, fBeg / NCH);
    load_chunk(&th, 0u);
    if (SMODE == 1u && lid < BT) { pm = row_meta(job, fBeg / NCH, lid); }
  }

  if (DB == 0u) {
    for (var f = fBeg; f < fEnd; f++) {
      let it = f / NCH;
      let ch = f % NCH;
      workgroupBarrier();
      store_chunk0(&th);
      if (SMODE == 1u && ch == 0u && lid < BT) { store_meta(lid, it, pm); }
      workgroupBarrier();
      if (f + 1u < fEnd) {
        let itN = (f + 1u) / NCH;
        let chN = (f + 1u) % NCH;
        if (chN == 0u) {
          y_offsets(&th, job, itN);
          if (SMODE == 1u && lid < BT) { pm = row_meta(job, itN, lid); }
        }
        load_chunk(&th, chN);
      }
      if (ch == 0u) { zero_acc(&th); }
      dot_chunk0(&th);
      if (ch == NCH - 1u) { epilogue(&th, job, it, iMin, nSlow); }
    }
  } else {
    // Chunk pairs (f even-numbered from fBeg, f + 1): buffer 0 then buffer 1.
    if (fBeg < fEnd) {
      store_chunk0(&th);
      if (SMODE == 1u && lid < BT) { store_meta(lid, fBeg / NCH, pm); }
    }
    workgroupBarrier();
    for (var f = fBeg; f < fEnd; f += 2u) {
      // Chunk f + 1 (odd within its tile: same tile, no new offsets) into registers.
      load_chunk(&th, (f + 1u) % NCH);
      if (f % NCH == 0u) { zero_acc(&th); }
      dot_chunk0(&th);
      store_chunk1(&th);
      workgroupBarrier();
      if (f + 2u < fEnd) {
        let itN = (f + 2u) / NCH;
        let chN = (f + 2u) % NCH;
        if (chN == 0u) {
          y_offsets(&th, job, itN);
          if (SMODE == 1u && lid < BT) { pm = row_meta(job, itN, lid); }
        }
        load_chunk(&th, chN);
      }
      dot_chunk1(&th);
      if ((f + 1u) % NCH == NCH - 1u) { epilogue(&th, job, (f + 1u) / NCH, iMin, nSlow); }
      if (f + 2u < fEnd) {
        store_chunk0(&th);
        if (SMODE == 1u && (f + 2u) % NCH == 0u && lid < BT) { store_meta(lid, (f + 2u) / NCH, pm); }
      }
      workgroupBarrier();
    }
  }

  if (SMODE == 0u) {
    // Combine the TY partial (max, sum, window sum) of each row (three rounds through `red`).
    workgroupBarrier();
    for (var r = 0u; r < RX; r++) { red[th.yi * BS + xrow(th.xi, r)] = th.m[r]; }
    workgroupBarrier();
    if (lid < BS) {
      var mm = NEG_INF;
      for (var y = 0u; y < TY; y++) { mm = max(mm, red[y * BS + lid]); }
      mrow[lid] = mm;
    }
    workgroupBarrier();
    var w: array<f32, RX>;
    for (var r = 0u; r < RX; r++) { w[r] = select(0.0, exp2(th.m[r] - mrow[xrow(th.xi, r)]), th.l[r] > 0.0); }
    var ll = 0.0;
    for (var r = 0u; r < RX; r++) { red[th.yi * BS + xrow(th.xi, r)] = th.l[r] * w[r]; }
    workgroupBarrier();
    if (lid < BS) { for (var y = 0u; y < TY; y++) { ll += red[y * BS + lid]; } }
    workgroupBarrier();
    var lwin = 0.0;
    for (var r = 0u; r < RX; r++) { red[th.yi * BS + xrow(th.xi, r)] = th.lw[r] * w[r]; }
    workgroupBarrier();
    if (lid < BS) { for (var y = 0u; y < TY; y++) { lwin += red[y * BS + lid]; } }
    workgroupBarrier();
    let u = t0 + lid;
    if (lid < BS && u < nAll) {
      let row = (job.kvh * p.group + u % p.group) * p.nSamp + u / p.group;
      if (nwg.z > 1u) {
        // (a split whose keys all lie past the row leaves (NEG_INF, 0, 0))
        partials[wg.z * p.nHeads * p.nSamp + row] = vec4<f32>(mrow[lid], ll, lwin, 0.0);
      } else {
        rowStats[row * 2u] = mrow[lid] + log2(ll);
        rowStats[row * 2u + 1u] = lwin / ll;
      }
    }
  } else {
    // Per head, each column's sum over the TY threads; the group sums.
    var gsum = 0.0;
    for (var g = 0u; g < GROUP; g++) {
      workgroupBarrier();
      for (var r = 0u; r < RX; r++) { red[th.yi * BS + xrow(th.xi, r)] = th.lh[g][r] + select(0.0, th.l[r], th.curG == g); }
      workgroupBarrier();
      if (lid < BS) {
        var s = 0.0;
        for (var y = 0u; y < TY; y++) { s += red[y * BS + lid]; }
        if (j0 + lid < p.nCols) { colScores[(job.kvh * p.group + g) * p.capacity + j0 + lid] = s; }
        gsum += s;
      }
    }
    if (lid < BS && j0 + lid < p.nCols) { groupScores[job.kvh * p.capacity + j0 + lid] = gsum; }
  }
}

// SampleAttention stages 1 + 2 as register-tiled GEMMs of the sampled rows'
// scores Q_s K^T (no per-score shuffles; see ../shared/SAMPLE_ATTENTION.md).
// One source, two kernels (const SMODE, set by the launcher kernels/sample_scores.ts):
//   0 rows: for each sampled row (all query heads of the KV group): lse over
//           keys [0, i] (log2 units) and the mass inside the window (i - w, i];
//           a workgroup owns BS (row, head) pairs and loops over K tiles of BT
//           keys up to its last row, keeping per-thread online max/sum.
//   1 cols: column scores c_h[j] = sum over sampled rows of exp2(s_ij - lse_i)
//           for j + w <= i, and the group sums; a workgroup owns BS key
//           columns and loops over the group's heads x tiles of BT sampled rows,
//           starting at the first row that can reach its columns (rows are sorted).
//           FLAT 1: the group's (head, row) pairs form one stream of group * nR rows
//           (nR rows per head from that first row), cut into BT-row tiles that may
//           straddle heads (less padding when nR is small, as in 4096-row chunks:
//           205 rows per head = 7 tiles of 128 over 4 heads instead of 8); each
//           thread keeps per-head column sums (GROUP * RX registers), reduced at the end.
// Both: the stationary operand X (BS rows of headDim, mode 0 the q rows pre-scaled
// by log2(e)/sqrt(D), mode 1 the K columns) sits in workgroup memory for the whole
// kernel; the streamed operand Y (BT rows: mode 0 K, mode 1 scaled q) goes through
// workgroup memory DK4 vec4s of headDim at a time (chunk k + 1 is loaded into
// registers while chunk k is multiplied). Each thread computes an RX x RY block of
// the BS x BT score tile (rows xi + TX * r, columns yi + TY * c; a 32-lane warp
// covers 8 x 4 thread positions so its X/Y reads are 8 and 4 distinct vec4s;
// odd row strides XSTR/YSTR keep those conflict-free).
// Workgroup: NT = (BS / RX) * (BT / RY) threads (>= BS and >= BT).
// Dispatch: mode 0 (ceil(nSamp * group / BS), nKvHeads, nSplit), heaviest tile first;
//           nSplit > 1 splits each workgroup's K tiles into nSplit equal ranges, one
//           per z, each writing its partial (max, sum, window sum) per row to
//           `partials`; kernels/sample_scores_combine.wgsl then writes rowStats.
//           mode 1 (ceil(nCols / BS), nKvHeads, 1).
// Precision: f32 loads (f16 KV unpacked in load_k4), f32 accumulation, exp2.
//
// Bindings (the header declares kc at 1, the Params uniform at 6 and, in the
// launcher's prelude, q at 0 with load_q4):
//   q:           (rows, nHeads * HEAD_DIM) f32, RoPE applied
//   kc:          (nKvHeads, capacity, HEAD_DIM) f32 or f16 pairs
//   rowStats:    (nHeads, nSamp, 2) f32: lse (log2 units), window mass (mode 0 writes, mode 1 reads)
//   colScores:   (nHeads, capacity) f32, columns [0, nCols) written (mode 1)
//   groupScores: (nKvHeads, capacity) f32, columns [0, nCols) written (mode 1)
//   partials:    (nSplit, nHeads, nSamp) vec4 f32 (max, sum, window sum, 0) (mode 0, nSplit > 1)

@group(0) @binding(3) var<storage, read_write> rowStats: array<f32>;
@group(0) @binding(4) var<storage, read_write> colScores: array<f32>;
@group(0) @binding(5) var<storage, read_write> groupScores: array<f32>;
@group(0) @binding(7) var<storage, read_write> partials: array<vec4<f32>>;

const NEG_INF: f32 = -3.0e38;
const TX: u32 = BS / RX;
const TY: u32 = BT / RY;
const NT: u32 = TX * TY;
const XW: u32 = NCH * DK4;          // vec4s of X per row (headDim padded to whole chunks)
const YN: u32 = BT * DK4;           // vec4s of one Y chunk
const PF: u32 = (YN + NT - 1u) / NT; // vec4s of the next chunk each thread holds

var<workgroup> xs: array<vec4<f32>, XS_LEN>; // [BS][XSTR]; mode 0 then (m, l, lw) [TY][BS]
var<workgroup> ys: array<vec4<f32>, YS_LEN>; // [BT][YSTR]; mode 1 also per-head sums [TY][BS] f32
var<workgroup> ypos: array<u32, BT>;         // mode 1: absolute positions of the tile's rows (0 past nSamp)
var<workgroup> ylse: array<f32, BT>;         // mode 1: their lse
var<workgroup> yhead: array<u32, BT>;        // mode 1: their head in the group

struct Job {
  kvh: u32,
  iMax: u32,   // mode 0: last key any row of the workgroup sees
  kStart: u32, // mode 1: first sampled row that reaches the workgroup's columns
  nRT: u32,    // mode 1: row tiles per head (FLAT 0)
  nR: u32,     // mode 1: sampled rows per head from kStart
}

// Mode 1: position, lse and head (in the group) of row t of Y tile `it`; position 0 past the rows.
struct RowMeta { pos: u32, lse: f32, head: u32 }

fn q_off(k: u32, head: u32) -> u32 {
  return sample_row(k) * p.nHeads * HEAD_DIM + head * HEAD_DIM;
}

// vec4 d4 (of the whole padded row) of row t of Y tile `it`.
fn load_y(job: Job, it: u32, t: u32, d4: u32) -> vec4<f32> {
  if (SMODE == 0u) {
    let j = min(it * BT + t, job.iMax);
    return load_k4(job.kvh * p.capacity + j, d4);
  }
  var g = it / job.nRT;
  var k = min(job.kStart + (it % job.nRT) * BT + t, p.nSamp - 1u);
  if (FLAT == 1u) {
    let kk = min(it * BT + t, p.group * job.nR - 1u);
    g = kk / job.nR;
    k = job.kStart + kk % job.nR;
  }
  return load_q4(q_off(k, job.kvh * p.group + g), d4) * p.scale;
}

fn row_meta(job: Job, it: u32, t: u32) -> RowMeta {
  var g = it / job.nRT;
  var k = job.kStart + (it % job.nRT) * BT + t;
  var ok = k < p.nSamp;
  if (FLAT == 1u) {
    let kk = it * BT + t;
    ok = kk < p.group * job.nR;
    g = min(kk / job.nR, p.group - 1u);
    k = job.kStart + kk % job.nR;
  }
  k = min(k, p.nSamp - 1u);
  return RowMeta(select(0u, p.pos + sample_row(k), ok), rowStats[((job.kvh * p.group + g) * p.nSamp + k) * 2u], g);
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  // Thread position: lx + GX * (ly + GY * (wx + (TX / GX) * wy)).
  let xi = lid % GX + GX * ((lid / (GX * GY)) % (TX / GX));
  let yi = (lid / GX) % GY + GY * (lid / (TX * GY));
  var job = Job(wg.y, 0u, 0u, 0u, 0u);
  let nAll = p.nSamp * p.group;
  var t0 = 0u;      // mode 0: first (row, head) pair of the workgroup
  var j0 = 0u;      // mode 1: first column
  var nIt = 0u;     // Y tiles
  var fBeg = 0u;    // flat chunks [fBeg, fEnd) of this workgroup (tile f / NCH, headDim chunk f % NCH)
  var fEnd = 0u;
  if (SMODE == 0u) {
    t0 = ((nAll + BS - 1u) / BS - 1u - wg.x) * BS;
    job.iMax = p.pos + sample_row(min(nAll - 1u, t0 + BS - 1u) / p.group);
    nIt = job.iMax / BT + 1u;
    // Split z of nwg.z: K tiles [z * per, (z + 1) * per).
    let per = (nIt + nwg.z - 1u) / nwg.z;
    fBeg = min(nIt, wg.z * per) * NCH;
    fEnd = min(nIt, wg.z * per + per) * NCH;
  } else {
    j0 = wg.x * BS;
    // First sampled row k with pos + sample_row(k) >= j0 + w (sample_row ascends).
    var lo = 0u;
    var hi = p.nSamp;
    loop {
      if (lo >= hi) { break; }
      let mid = (lo + hi) / 2u;
      if (p.pos + sample_row(mid) >= j0 + p.window) { hi = mid; } else { lo = mid + 1u; }
    }
    job.kStart = lo;
    job.nR = p.nSamp - lo;
    job.nRT = (job.nR + BT - 1u) / BT;
    nIt = select(p.group * job.nRT, (p.group * job.nR + BT - 1u) / BT, FLAT == 1u);
    fEnd = nIt * NCH;
  }

  var pf: array<vec4<f32>, PF>;
  var pm = RowMeta(0u, 0.0, 0u);
  // First, so its loads overlap X's: pf, the registers of flat chunk fBeg; mode 1 also the tile's row metadata.
  if (fBeg < fEnd) {
    for (var u = 0u; u < PF; u++) {
      let e = lid + u * NT;
      if (e < YN) { pf[u] = load_y(job, fBeg / NCH, e / DK4, e % DK4); }
    }
  }
  if (SMODE == 1u && fEnd > 0u && lid < BT) { pm = row_meta(job, 0u, lid); }

  // Stationary X, zero past headDim.
  for (var e = lid; e < BS * XW; e += NT) {
    let s = e / XW;
    let d4 = e % XW;
    var x: vec4<f32>;
    if (SMODE == 0u) {
      let u = min(t0 + s, nAll - 1u);
      x = load_q4(q_off(u / p.group, job.kvh * p.group + u % p.group), d4) * p.scale;
    } else {
      x = load_k4(job.kvh * p.capacity + min(j0 + s, max(p.nCols, 1u) - 1u), d4);
    }
    xs[s * XSTR + d4] = x;
  }

  // Per-thread state. Mode 0: the RX rows' positions and online (max, sum, window sum)
  // over this thread's columns. Mode 1: the RX columns' sums for the current head.
  var ipos: array<u32, RX>;
  var m: array<f32, RX>;
  var l: array<f32, RX>;
  var lw: array<f32, RX>;
  for (var r = 0u; r < RX; r++) {
    if (SMODE == 0u) { ipos[r] = p.pos + sample_row(min(t0 + xi + TX * r, nAll - 1u) / p.group); }
    m[r] = NEG_INF;
    l[r] = 0.0;
    lw[r] = 0.0;
  }
  // (mode 1 keeps its column sums in l; FLAT 1: those of head curG, flushed to lh on a head change)
  var gsum = 0.0; // mode 1, thread lid < BS: group sum of column j0 + lid
  var lh: array<f32, LH>;
  for (var a = 0u; a < LH; a++) { lh[a] = 0.0; }
  var curG = 0u;

  var acc: array<f32, RX * RY>;

  for (var f = fBeg; f < fEnd; f++) {
    let it = f / NCH;
    let ch = f % NCH;
    workgroupBarrier();
    for (var u = 0u; u < PF; u++) {
      let e = lid + u * NT;
      if (e < YN) { ys[(e / DK4) * YSTR + e % DK4] = pf[u]; }
    }
    if (SMODE == 1u && ch == 0u && lid < BT) { ypos[lid] = pm.pos; ylse[lid] = pm.lse; yhead[lid] = pm.head; }
    workgroupBarrier();
    if (f + 1u < fEnd) {
      let itN = (f + 1u) / NCH;
      let chN = (f + 1u) % NCH;
      for (var u = 0u; u < PF; u++) {
        let e = lid + u * NT;
        if (e < YN) { pf[u] = load_y(job, itN, e / DK4, chN * DK4 + e % DK4); }
      }
      if (SMODE == 1u && chN == 0u && lid < BT) { pm = row_meta(job, itN, lid); }
    }
    if (ch == 0u) { for (var a = 0u; a < RX * RY; a++) { acc[a] = 0.0; } }
    let xc = ch * DK4;
    for (var e = 0u; e < DK4; e++) {
      var xv: array<vec4<f32>, RX>;
      var yv: array<vec4<f32>, RY>;
      for (var r = 0u; r < RX; r++) { xv[r] = xs[(xi + TX * r) * XSTR + xc + e]; }
      for (var c = 0u; c < RY; c++) { yv[c] = ys[(yi + TY * c) * YSTR + e]; }
      for (var r = 0u; r < RX; r++) {
        for (var c = 0u; c < RY; c++) {
          var a = acc[r * RY + c];
          a = fma(xv[r].x, yv[c].x, a);
          a = fma(xv[r].y, yv[c].y, a);
          a = fma(xv[r].z, yv[c].z, a);
          a = fma(xv[r].w, yv[c].w, a);
          acc[r * RY + c] = a;
        }
      }
    }
    if (ch != NCH - 1u) { continue; }

    if (SMODE == 0u) {
      // Online softmax of this thread's RY keys for each of its RX rows.
      let k0 = it * BT;
      for (var r = 0u; r < RX; r++) {
        let i = ipos[r];
        var tmax = NEG_INF;
        for (var c = 0u; c < RY; c++) {
          let j = k0 + yi + TY * c;
          tmax = max(tmax, select(NEG_INF, acc[r * RY + c], j <= i));
        }
        if (tmax > m[r]) {
          let corr = exp2(m[r] - tmax);
          l[r] *= corr;
          lw[r] *= corr;
          m[r] = tmax;
        }
        for (var c = 0u; c < RY; c++) {
          let j = k0 + yi + TY * c;
          let pe = select(0.0, exp2(acc[r * RY + c] - m[r]), j <= i);
          l[r] += pe;
          lw[r] += select(0.0, pe, j + p.window > i);
        }
      }
    } else {
      // P = exp2(s - lse) of the rows whose window leaves the column out.
      for (var c = 0u; c < RY; c++) {
        let t = yi + TY * c;
        let i = ypos[t];
        let lse = ylse[t];
        if (FLAT == 1u && yhead[t] != curG) {
          // Rows ascend, so heads only grow: flush head curG's sums.
          for (var gg = 0u; gg < GROUP; gg++) {
            for (var r = 0u; r < RX; r++) { lh[gg * RX + r] += select(0.0, l[r], gg == curG); }
          }
          for (var r = 0u; r < RX; r++) { l[r] = 0.0; }
          curG = yhead[t];
        }
        for (var r = 0u; r < RX; r++) {
          let j = j0 + xi + TX * r;
          l[r] += select(0.0, exp2(acc[r * RY + c] - lse), j + p.window <= i);
        }
      }
      if (FLAT == 0u && it % job.nRT == job.nRT - 1u) {
        // Last tile of head g: sum the column over the TY threads that share it.
        let head = job.kvh * p.group + it / job.nRT;
        workgroupBarrier();
        for (var r = 0u; r < RX; r++) {
          let at = yi * BS + xi + TX * r;
          ys[at / 4u][at % 4u] = l[r];
          l[r] = 0.0;
        }
        workgroupBarrier();
        if (lid < BS) {
          var s = 0.0;
          for (var y = 0u; y < TY; y++) { let at = y * BS + lid; s += ys[at / 4u][at % 4u]; }
          if (j0 + lid < p.nCols) { colScores[head * p.capacity + j0 + lid] = s; }
          gsum += s;
        }
      }
    }
  }

  if (SMODE == 0u) {
    // Combine the TY partial (max, sum, window sum) of each row.
    workgroupBarrier();
    for (var r = 0u; r < RX; r++) { xs[yi * BS + xi + TX * r] = vec4<f32>(m[r], l[r], lw[r], 0.0); }
    workgroupBarrier();
    let u = t0 + lid;
    if (lid < BS && u < nAll) {
      var mm = NEG_INF;
      for (var y = 0u; y < TY; y++) { mm = max(mm, xs[y * BS + lid].x); }
      var ll = 0.0;
      var lwin = 0.0;
      for (var y = 0u; y < TY; y++) {
        let st = xs[y * BS + lid];
        let w = select(0.0, exp2(st.x - mm), st.y > 0.0);
        ll += st.y * w;
        lwin += st.z * w;
      }
      let row = (job.kvh * p.group + u % p.group) * p.nSamp + u / p.group;
      if (nwg.z > 1u) {
        // (a split whose keys all lie past the row leaves (NEG_INF, 0, 0))
        partials[wg.z * p.nHeads * p.nSamp + row] = vec4<f32>(mm, ll, lwin, 0.0);
      } else {
        rowStats[row * 2u] = mm + log2(ll);
        rowStats[row * 2u + 1u] = lwin / ll;
      }
    }
  } else {
    if (FLAT == 1u) {
      // Per head: sum the columns over the TY threads that share them.
      for (var gg = 0u; gg < GROUP; gg++) {
        workgroupBarrier();
        for (var r = 0u; r < RX; r++) {
          let at = yi * BS + xi + TX * r;
          ys[at / 4u][at % 4u] = lh[gg * RX + r] + select(0.0, l[r], gg == curG);
        }
        workgroupBarrier();
        if (lid < BS) {
          var s = 0.0;
          for (var y = 0u; y < TY; y++) { let at = y * BS + lid; s += ys[at / 4u][at % 4u]; }
          if (j0 + lid < p.nCols) { colScores[(job.kvh * p.group + gg) * p.capacity + j0 + lid] = s; }
          gsum += s;
        }
      }
    }
    let j = j0 + lid;
    if (lid < BS && j < p.nCols) {
      if (FLAT == 0u && job.nRT == 0u) {
        for (var g = 0u; g < p.group; g++) { colScores[(job.kvh * p.group + g) * p.capacity + j] = 0.0; }
      }
      groupScores[job.kvh * p.capacity + j] = gsum;
    }
  }
}

/**
 * GEMM variants of the linear layer (prefill; issue 9), chosen at run time by
 * LinearOptions.gemm (bench/gemm.ts sweeps them with --variant):
 *
 * - 'base': linear_gemm.wgsl, the measured default (128 x 128 tile, 8 x 8 per
 *   thread, vec4 of 4 rows per workgroup-memory word, K step bk, register
 *   prefetch; 31.6-33.8 TFLOP/s f16, 30.7-31.3 q4 on the H100).
 * - 'tr': the same transposed tile layout and thread mapping (2 x 2 blocks of
 *   4 x 4 at stride 64), generated (linear_gemm_tiled.wgsl) with straight-line
 *   code: every workgroup-memory index in the inner loop is a constant k plus
 *   a loop-invariant thread offset (As[k][ty + 16 i4]), so Tint's robustness
 *   clamp on it is hoisted out of the loop instead of costing a min() and an
 *   address add per load; global loads as in 'base' (4 rows at one k), or
 *   with vl the 'kv' loads (vec4 / whole words along k) stored one constant
 *   component at a time (H100, 08:40 sweep of that form: 39.6-41.2 TFLOP/s
 *   f16, 35.6 q4 at 14336 x 4096, against base 32.8-33.4 / 31.0).
 * - 'kv': tiles kept along k (As[i][ty][kq], a vec4 = 4 consecutive k of one
 *   row; rows ty + 16 i, columns tx + 16 j per thread): x and W land in
 *   workgroup memory straight from vec4 / whole-word global loads without a
 *   transpose (1 load + 1 store per 4 k of a row instead of 4 scalar loads),
 *   the three-level array makes the thread offset the only runtime index, and
 *   the row pitch of bk / 4 + 1 vec4 keeps the 8 lanes of a 128-bit access on
 *   distinct banks. Inner loop: TN + TM vec4 loads per 4 TM TN FMAs (8 x 8:
 *   16 per 256, the same ratio as 'base').
 *
 * tm x tn (rows x columns per thread, default 8 x 8) sets the tile (16 tm x
 * 16 tn); bk the K step; prefetch loads tile t + 1 into registers during the
 * math of tile t. Variants are named by presets (GEMM_PRESETS) or specs like
 * 'kv:bk=32:tm=16:tn=8:pf=0' (parseGemmVariant).
 */
import type { WeightFormat } from '../src/loader/formats.ts';
import { InvalidOptionError } from '../src/errors.ts';
import tiledSrc from './linear_gemm_tiled.wgsl?raw';

export type GemmVariant = 'base' | 'tr' | 'kv';

/**
 * Tunables of the GEMM: kernel variant (default 'base'), K step (8, 16 or 32;
 * workgroup memory in gemmSmemBytes), register prefetch of the next tile, and
 * for the generated variants the rows (tm) and columns (tn) per thread and
 * double-buffered workgroup memory (db: one barrier per K step instead of two;
 * needs prefetch), the warp shape (sw: 8 x 4 threads per warp instead of
 * 16 x 2, fewer distinct workgroup-memory addresses per vec4 read) and for
 * 'tr' the 'kv' global loads (vl).
 * (Double-buffered workgroup tiles and power-of-two tile arrays with masked
 * indices were tried on 'base': 18.7 and 19-27 TFLOP/s against 31.3 on the
 * H100; removed.)
 */
export interface GemmConfig { bk: 8 | 16 | 32; prefetch: boolean; variant?: GemmVariant; tm?: number; tn?: number; db?: boolean; sw?: boolean; vl?: boolean }

/** Named variants for the bench sweep (bench/gemm.ts --variant). */
export const GEMM_PRESETS: Record<string, GemmConfig> = {
  base: { variant: 'base', bk: 16, prefetch: true },
  tr: { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8 },
  tr32: { variant: 'tr', bk: 32, prefetch: true, tm: 8, tn: 8 },
  kv: { variant: 'kv', bk: 16, prefetch: true, tm: 8, tn: 8 },
  kv32: { variant: 'kv', bk: 32, prefetch: true, tm: 8, tn: 8 },
  kvnp: { variant: 'kv', bk: 16, prefetch: false, tm: 8, tn: 8 },
  kv256: { variant: 'kv', bk: 16, prefetch: true, tm: 16, tn: 8 },
  kv8: { variant: 'kv', bk: 8, prefetch: true, tm: 8, tn: 8 },
  kvdb: { variant: 'kv', bk: 16, prefetch: true, tm: 8, tn: 8, db: true },
  trdb: { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8, db: true },
  kvwide: { variant: 'kv', bk: 16, prefetch: true, tm: 8, tn: 16 },
  kvsw: { variant: 'kv', bk: 16, prefetch: true, tm: 8, tn: 8, sw: true },
  trsw: { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8, sw: true },
  trvl: { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8, vl: true },
  trvlsw: { variant: 'tr', bk: 16, prefetch: true, tm: 8, tn: 8, vl: true, sw: true },
};

/** A preset name with optional overrides: 'kv', 'kv:bk=32', 'tr:tm=8:tn=16:pf=0', 'kv:db=1'. */
export function parseGemmVariant(spec: string): GemmConfig {
  const [name, ...mods] = spec.trim().split(':');
  const preset = GEMM_PRESETS[name];
  if (!preset) throw new InvalidOptionError('gemm variant', `unknown '${name}' (known: ${Object.keys(GEMM_PRESETS).join(', ')})`);
  const g: GemmConfig = { ...preset };
  for (const m of mods) {
    const [key, value] = m.split('=');
    const v = Number(value);
    if (!Number.isInteger(v)) throw new InvalidOptionError('gemm variant', `'${m}' in '${spec}' needs an integer value`);
    if (key === 'bk') g.bk = v as GemmConfig['bk'];
    else if (key === 'tm') g.tm = v;
    else if (key === 'tn') g.tn = v;
    else if (key === 'pf') g.prefetch = v !== 0;
    else if (key === 'db') g.db = v !== 0;
    else if (key === 'sw') g.sw = v !== 0;
    else if (key === 'vl') g.vl = v !== 0;
    else throw new InvalidOptionError('gemm variant', `unknown key '${key}' in '${spec}' (bk, tm, tn, pf, db, sw, vl)`);
  }
  return g;
}

/** Short name of a configuration, e.g. 'kv bk16 8x8 prefetch'. */
export function gemmTag(g: GemmConfig): string {
  const v = g.variant ?? 'base';
  const tile = v === 'base' ? '' : ` ${g.tm ?? 8}x${g.tn ?? 8}`;
  return `${v} bk${g.bk}${tile}${g.prefetch ? ' prefetch' : ''}${g.db ? ' db' : ''}${g.sw ? ' sw' : ''}${g.vl ? ' vl' : ''}`;
}

/** Rows of x and weight rows per workgroup. */
export function gemmTile(g: GemmConfig): { tileM: number; tileN: number } {
  if ((g.variant ?? 'base') === 'base') return { tileM: 128, tileN: 128 };
  return { tileM: 16 * (g.tm ?? 8), tileN: 16 * (g.tn ?? 8) };
}

/** Workgroup memory of a GEMM configuration in bytes. */
export function gemmSmemBytes(g: GemmConfig): number {
  const v = g.variant ?? 'base';
  const tm = g.tm ?? 8, tn = g.tn ?? 8;
  if (v === 'base') return 2 * g.bk * 33 * 16;
  const bufs = g.db ? 2 : 1;
  if (v === 'tr') return bufs * g.bk * (4 * tm + 1 + 4 * tn + 1) * 16;
  return bufs * 16 * (tm + tn) * (g.bk / 4 + 1) * 16;
}

/** Throws InvalidOptionError for a configuration this device or the kernels cannot run. */
export function checkGemmConfig(g: GemmConfig, smemLimitBytes: number): void {
  const v = g.variant ?? 'base';
  if (v !== 'base' && v !== 'tr' && v !== 'kv') throw new InvalidOptionError('gemm.variant', `must be base, tr or kv (got ${v})`);
  if (g.bk !== 8 && g.bk !== 16 && g.bk !== 32) throw new InvalidOptionError('gemm.bk', `must be 8, 16 or 32 (got ${g.bk})`);
  if (v !== 'base') {
    const tm = g.tm ?? 8, tn = g.tn ?? 8;
    const step = v === 'tr' ? 4 : 1;
    // Columns split in gate and up halves (GATE_UP): whole vec4 groups per half for 'tr'.
    const stepN = v === 'tr' ? 8 : 2;
    if (!(Number.isInteger(tm) && tm >= step && tm % step === 0 && tm <= 16)) {
      throw new InvalidOptionError('gemm.tm', `${v} needs rows per thread a multiple of ${step} in ${step}..16 (got ${tm})`);
    }
    if (!(Number.isInteger(tn) && tn >= stepN && tn % stepN === 0 && tn <= 16)) {
      throw new InvalidOptionError('gemm.tn', `${v} needs columns per thread a multiple of ${stepN} in ${stepN}..16 (got ${tn})`);
    }
    if (tm * tn > 128) throw new InvalidOptionError('gemm', `${v} ${tm}x${tn}: at most 128 accumulators per thread`);
    if (g.db && !g.prefetch) throw new InvalidOptionError('gemm.db', 'double buffering stages the next tile in registers: needs prefetch');
    if (g.vl && v !== 'tr') throw new InvalidOptionError('gemm.vl', 'vec4 loads into transposed tiles are a tr option');
  } else if (g.db || g.sw || g.vl || g.tm !== undefined || g.tn !== undefined) {
    throw new InvalidOptionError('gemm', 'base takes only bk and prefetch (tm, tn, db, sw, vl are for tr / kv)');
  }
  if (gemmSmemBytes(g) > smemLimitBytes) {
    throw new InvalidOptionError('gemm', `${gemmTag(g)} needs ${gemmSmemBytes(g)} bytes of workgroup memory, the device allows ${smemLimitBytes}`);
  }
}

export interface TiledShape {
  format: WeightFormat;
  /** Elements per u32 word of the format. */
  epw: number;
  quant: boolean;
  /** Quantization group (1 for f32/f16). */
  group: number;
  inDim: number;
  /** Offset of x in f32 elements. */
  xOffElems: number;
}

const COMP = 'xyzw';
const acc = (i: number, j: number) => `c${i}_${j}`;

/** 'kv' inner product of one tile: per 4 k, tn + tm vec4 reads (As/Bs: the tile arrays), 4 tm tn FMAs. */
function kvStep(tm: number, tn: number, kq: number, As: string, Bs: string): string {
  const out: string[] = [];
  for (let q = 0; q < kq; q++) {
    out.push('  {');
    for (let j = 0; j < tn; j++) out.push(`    let b${j} = ${Bs}[${j}][tx][${q}];`);
    for (let i = 0; i < tm; i++) {
      out.push(`    {\n      let a = ${As}[${i}][ty][${q}];`);
      for (let c = 0; c < 4; c++) {
        for (let j = 0; j < tn; j++) out.push(`      ${acc(i, j)} = fma(a.${COMP[c]}, b${j}.${COMP[c]}, ${acc(i, j)});`);
      }
      out.push('    }');
    }
    out.push('  }');
  }
  return out.join('\n');
}

/** 'tr' inner product of one tile: per k, tm / 4 + tn / 4 vec4 reads, tm tn FMAs. */
function trStep(tm: number, tn: number, bk: number, As: string, Bs: string): string {
  const out: string[] = [];
  for (let k = 0; k < bk; k++) {
    out.push('  {');
    for (let i4 = 0; i4 < tm / 4; i4++) out.push(`    let a${i4} = ${As}[${k}][ty${i4 ? ` + ${16 * i4}u` : ''}];`);
    for (let j4 = 0; j4 < tn / 4; j4++) out.push(`    let b${j4} = ${Bs}[${k}][tx${j4 ? ` + ${16 * j4}u` : ''}];`);
    for (let i = 0; i < tm; i++) {
      for (let j = 0; j < tn; j++) out.push(`    ${acc(i, j)} = fma(a${i >> 2}.${COMP[i & 3]}, b${j >> 2}.${COMP[j & 3]}, ${acc(i, j)});`);
    }
    out.push('  }');
  }
  return out.join('\n');
}

const lines = (n: number, f: (i: number) => string) => Array.from({ length: n }, (_, i) => f(i)).join('\n');
/** Slot i of `units` per tile, 256 threads: `u` in scope, guarded where the units do not fill the slots. */
const slot = (i: number, units: number, body: string) =>
  `  {\n    let u = lid + ${256 * i}u;\n${units % 256 === 0 || units > 256 * (i + 1) ? body : `if (u < ${units}u) {\n${body}\n}`}\n  }`;

/** Global loads (fetch, k0 in scope) into registers (decls) and their stores into the tiles (commitA / commitB). */
interface Transfer {
  xElem: string;
  wElem: string;
  decls: string;
  fetch: string;
  commitA: (As: string) => string;
  commitB: (Bs: string) => string;
}

/**
 * 'kv' tiles: x in vec4 runs along k (one load and one store per 4 k of a
 * row; element loads where K or the x offset is not a multiple of 4), W in
 * whole-word chunks of ch elements along k with one scale each (element loads
 * where K or the group size do not split into chunks).
 * With `transposed` ('tr' with vl): the same loads, stored into the 'tr'
 * tiles (vec4 of 4 rows at one k) one component at a time. The units are
 * ordered component-major, so a slot's row % 4 is the same for a whole
 * group of U / 4 consecutive threads: the component is chosen by a
 * (warp-uniform) branch and always written with a constant index (a runtime
 * component index becomes a whole-vector read-modify-write on some backends,
 * which races with the neighbours' writes).
 */
function kvTransfer(g: GemmConfig, s: TiledShape, transposed = false): Transfer {
  const tm = g.tm ?? 8, tn = g.tn ?? 8, bk = g.bk, kq = bk / 4;
  const tileM = 16 * tm, tileN = 16 * tn;
  const vecX = s.inDim % 4 === 0 && s.xOffElems % 4 === 0;
  // Chunks: at most a 16-byte load, and small enough that every thread gets
  // one (q4 at 128 x 128 x 16: one word each rather than two for half of them).
  const ch = Math.max(s.epw, 4, Math.min(4 * s.epw, bk, (tileN * bk) / 256));
  const wpc = ch / s.epw;
  const vecW = s.inDim % ch === 0 && (!s.quant || s.group % ch === 0);
  const wElem = vecW && wpc > 1 ? `vec${wpc}<u32>` : 'u32';
  const ua = tileM * kq, sa = Math.ceil(ua / 256);
  const cpr = vecW ? bk / ch : kq; // W units per tile row
  const ub = tileN * cpr, sb = Math.ceil(ub / 256);
  // Unit u -> (tile row, unit along k): row-major ('kv'), or component-major ('tr': row = 4 q + c).
  const rowOf = (units: number, per: number) => transposed
    ? `4u * ((u % ${units / 4}u) / ${per}u) + u / ${units / 4}u` : `u / ${per}u`;
  const alongOf = (units: number, per: number) => transposed ? `(u % ${units / 4}u) % ${per}u` : `u % ${per}u`;
  /** Stores `vals(c)` (statements for component c) under a branch on the slot's component. */
  const byComponent = (i: number, units: number, stmts: (c: number) => string) => {
    const c0 = Math.floor((256 * i) / (units / 4)), c1 = Math.min(3, Math.floor((256 * i + 255) / (units / 4)));
    if (c0 === c1) return stmts(c0);
    return Array.from({ length: c1 - c0 + 1 }, (_, d) => `    ${d ? 'else ' : ''}if (u / ${units / 4}u == ${c0 + d}u) {\n${stmts(c0 + d)}\n    }`).join('\n');
  };

  const decls = [
    lines(sa, (i) => `  var ra${i}: vec4<f32>;`),
    vecW ? lines(sb, (i) => `  var rw${i}: ${wElem};${s.quant ? ` var rs${i}: f32;` : ''}`) : lines(sb, (i) => `  var rb${i}: vec4<f32>;`),
  ].join('\n');
  const fetchX = lines(sa, (i) => {
    const load = vecX
      ? `if (row < p.m && k < p.k) { v = x[(p.xOff >> 2u) + row * (p.k >> 2u) + (k >> 2u)]; }`
      : `if (row < p.m) {\n      let base = p.xOff + row * p.k + k;\n` +
        lines(4, (c) => `      if (k + ${c}u < p.k) { v.${COMP[c]} = x[base + ${c}u]; }`) + '\n    }';
    return slot(i, ua, `    let row = m0 + ${rowOf(ua, kq)};\n    let k = k0 + (${alongOf(ua, kq)}) * 4u;\n` +
      `    var v = vec4<f32>(0.0);\n    ${load}\n    ra${i} = v;`);
  });
  const fetchW = lines(sb, (i) => {
    if (vecW) {
      return slot(i, ub, `    let r = weight_row(nt, ${rowOf(ub, cpr)});\n    let k = k0 + (${alongOf(ub, cpr)}) * ${ch}u;\n` +
        `    var wv = ${wElem}(0u);\n${s.quant ? '    var sv = 0.0;\n' : ''}` +
        `    if (r.z != 0u && k < p.k) {\n      wv = load_w(r.x, r.y * (p.k / ${ch}u) + k / ${ch}u);\n` +
        (s.quant ? '      sv = load_scale(r.x, r.y * (p.k / GROUP) + k / GROUP);\n' : '') +
        `    }\n    rw${i} = wv;${s.quant ? ` rs${i} = sv;` : ''}`);
    }
    return slot(i, ub, `    let r = weight_row(nt, ${rowOf(ub, kq)});\n    let k = k0 + (${alongOf(ub, kq)}) * 4u;\n    var v = vec4<f32>(0.0);\n` +
      `    if (r.z != 0u) {\n      let e = r.y * p.k + k;\n` +
      lines(4, (c) => `      if (k + ${c}u < p.k) { v.${COMP[c]} = ${elem('r', `e + ${c}u`, `k + ${c}u`, s.quant)}; }`) +
      `\n    }\n    rb${i} = v;`);
  });
  const commitA = (As: string) => lines(sa, (i) => {
    if (!transposed) return slot(i, ua, `    let r = u / ${kq}u;\n    ${As}[r / 16u][r % 16u][u % ${kq}u] = ra${i};`);
    return slot(i, ua, `    let q = (u % ${ua / 4}u) / ${kq}u;\n    let kb = (${alongOf(ua, kq)}) * 4u;\n` +
      byComponent(i, ua, (c) => lines(4, (e) => `    ${As}[kb + ${e}u][q].${COMP[c]} = ra${i}.${COMP[e]};`)));
  });
  const commitB = (Bs: string) => lines(sb, (i) => {
    if (!vecW) {
      if (!transposed) return slot(i, ub, `    let n = u / ${kq}u;\n    ${Bs}[n / 16u][n % 16u][u % ${kq}u] = rb${i};`);
      return slot(i, ub, `    let q = (u % ${ub / 4}u) / ${kq}u;\n    let kb = (${alongOf(ub, kq)}) * 4u;\n` +
        byComponent(i, ub, (c) => lines(4, (e) => `    ${Bs}[kb + ${e}u][q].${COMP[c]} = rb${i}.${COMP[e]};`)));
    }
    const words = wpc === 1 ? [`rw${i}`] : Array.from({ length: wpc }, (_, w) => `rw${i}.${COMP[w]}`);
    const el = (e: number) => `d${Math.floor(e / s.epw)}[${e % s.epw}]${s.quant ? ` * rs${i}` : ''}`;
    const dec = lines(wpc, (w) => `    let d${w} = dec_word(${words[w]});`);
    if (transposed) {
      return slot(i, ub, `    let q = (u % ${ub / 4}u) / ${cpr}u;\n    let kb = (${alongOf(ub, cpr)}) * ${ch}u;\n` + dec + '\n' +
        byComponent(i, ub, (c) => lines(ch, (e) => `    ${Bs}[kb + ${e}u][q].${COMP[c]} = ${el(e)};`)));
    }
    return slot(i, ub, `    let n = u / ${cpr}u;\n    let q0 = (u % ${cpr}u) * ${ch / 4}u;\n` + dec + '\n' +
      lines(ch / 4, (q) => `    ${Bs}[n / 16u][n % 16u][q0 + ${q}u] = ` +
        `vec4<f32>(${el(4 * q)}, ${el(4 * q + 1)}, ${el(4 * q + 2)}, ${el(4 * q + 3)});`));
  });
  return { xElem: vecX ? 'vec4<f32>' : 'f32', wElem, decls, fetch: fetchX + '\n' + fetchW, commitA, commitB };
}

/** Element e (k = kExpr) of weight row r (a weight_row result), dequantized. */
function elem(r: string, e: string, k: string, quant: boolean): string {
  return `dec_elem(load_w(${r}.x, (${e}) / EPW), (${e}) % EPW)` + (quant ? ` * load_scale(${r}.x, ${r}.y * (p.k / GROUP) + (${k}) / GROUP)` : '');
}

/**
 * 'tr' tiles (vec4 of 4 rows at one k), loaded as linear_gemm.wgsl does:
 * slots of 4 rows at one k (x, and W elements) or one word (W where K and
 * the group size split into words), so every store into workgroup memory is
 * a whole vec4 (component writes of a shared vec4 by different threads may
 * race: WGSL lets a component write touch the whole vector).
 */
function trTransfer(g: GemmConfig, s: TiledShape): Transfer {
  const tm = g.tm ?? 8, tn = g.tn ?? 8, bk = g.bk;
  const tileM = 16 * tm, tileN = 16 * tn;
  const wordPath = s.inDim % s.epw === 0 && (!s.quant || s.group % s.epw === 0);
  const wpr = bk / s.epw; // words of one weight row per tile (word path)
  const ua = (tileM / 4) * bk, sa = Math.ceil(ua / 256);
  const ub = wordPath ? (tileN / 4) * wpr : (tileN / 4) * bk, sb = Math.ceil(ub / 256);
  const decls = [
    lines(sa, (i) => `  var ra${i}: vec4<f32>;`),
    wordPath ? lines(sb, (i) => `  var rw${i}: vec4<u32>;${s.quant ? ` var rs${i}: vec4<f32>;` : ''}`) : lines(sb, (i) => `  var rb${i}: vec4<f32>;`),
  ].join('\n');
  const fetchX = lines(sa, (i) => slot(i, ua, `    let row = m0 + (u / ${bk}u) * 4u;\n    let k = k0 + u % ${bk}u;\n` +
    `    var v = vec4<f32>(0.0);\n    if (k < p.k) {\n      let base = p.xOff + row * p.k + k;\n` +
    lines(4, (c) => `      if (row + ${c}u < p.m) { v.${COMP[c]} = x[base + ${c}u * p.k]; }`) + `\n    }\n    ra${i} = v;`));
  const fetchW = lines(sb, (i) => {
    if (wordPath) {
      return slot(i, ub, `    let q = u / ${wpr}u;\n    let k = k0 + (u % ${wpr}u) * EPW;\n    var wv = vec4<u32>(0u);\n` +
        (s.quant ? '    var sv = vec4<f32>(0.0);\n' : '') + '    if (k < p.k) {\n' +
        lines(4, (c) => `      { let r = weight_row(nt, q * 4u + ${c}u); if (r.z != 0u) { wv.${COMP[c]} = load_w(r.x, r.y * (p.k / EPW) + k / EPW);` +
          (s.quant ? ` sv.${COMP[c]} = load_scale(r.x, r.y * (p.k / GROUP) + k / GROUP);` : '') + ' } }') +
        `\n    }\n    rw${i} = wv;${s.quant ? ` rs${i} = sv;` : ''}`);
    }
    return slot(i, ub, `    let q = u / ${bk}u;\n    let k = k0 + u % ${bk}u;\n    var v = vec4<f32>(0.0);\n    if (k < p.k) {\n` +
      lines(4, (c) => `      { let r = weight_row(nt, q * 4u + ${c}u); if (r.z != 0u) { v.${COMP[c]} = ${elem('r', 'r.y * p.k + k', 'k', s.quant)}; } }`) +
      `\n    }\n    rb${i} = v;`);
  });
  const commitA = (As: string) => lines(sa, (i) => slot(i, ua, `    ${As}[u % ${bk}u][u / ${bk}u] = ra${i};`));
  const commitB = (Bs: string) => lines(sb, (i) => {
    if (!wordPath) return slot(i, ub, `    ${Bs}[u % ${bk}u][u / ${bk}u] = rb${i};`);
    return slot(i, ub, `    let q = u / ${wpr}u;\n    let kb = (u % ${wpr}u) * EPW;\n` +
      lines(4, (c) => `    let d${c} = dec_word(rw${i}.${COMP[c]});`) + '\n' +
      lines(s.epw, (j) => `    ${Bs}[kb + ${j}u][q] = vec4<f32>(d0[${j}], d1[${j}], d2[${j}], d3[${j}])${s.quant ? ` * rs${i}` : ''};`));
  });
  return { xElem: 'f32', wElem: 'u32', decls, fetch: fetchX + '\n' + fetchW, commitA, commitB };
}

/** WGSL of a generated variant ('tr' / 'kv') for one format and shape class; `formatSrc` is linear_<fmt>.wgsl. */
export function gemmTiledSource(g: GemmConfig, formatSrc: string, s: TiledShape): string {
  const layout = g.variant === 'tr' ? 'tr' : 'kv';
  const tm = g.tm ?? 8, tn = g.tn ?? 8, bk = g.bk;
  const kq = bk / 4;
  const tileM = 16 * tm, tileN = 16 * tn;
  const xfer = layout === 'kv' ? kvTransfer(g, s) : g.vl ? kvTransfer(g, s, true) : trTransfer(g, s);
  // Workgroup tiles; double-buffered: As[buf]... with a constant buf.
  const tA = (b: number) => (g.db ? `As[${b}]` : 'As');
  const tB = (b: number) => (g.db ? `Bs[${b}]` : 'Bs');
  const commitA = (bf: number) => xfer.commitA(tA(bf));
  const commitB = (bf: number) => xfer.commitB(tB(bf));
  const fetch = xfer.fetch;
  const decls = lines(tm, (i) => `  var ${Array.from({ length: tn }, (_, j) => `${acc(i, j)} = 0.0`).join('; var ')};`) + '\n' + xfer.decls;

  // ---- inner product over one tile ----
  const stepOf = (bf: number) => layout === 'kv' ? kvStep(tm, tn, kq, tA(bf), tB(bf)) : trStep(tm, tn, bk, tA(bf), tB(bf));

  // ---- K loop ----
  const commit = (bf: number) => commitA(bf) + '\n' + commitB(bf);
  const fetchAt = (k0: string) => `  {\n  let k0 = ${k0};\n${fetch}\n  }`;
  let loop: string;
  if (g.db) {
    loop = [fetchAt('0u'), commit(0), '  workgroupBarrier();',
      '  for (var t = 0u; t < nk; t += 2u) {',
      `  if (t + 1u < nk) {\n${fetchAt('(t + 1u) * BK')}\n  }`, stepOf(0), `  if (t + 1u < nk) {\n${commit(1)}\n  }`, '  workgroupBarrier();',
      '  if (t + 1u >= nk) { break; }',
      `  if (t + 2u < nk) {\n${fetchAt('(t + 2u) * BK')}\n  }`, stepOf(1), `  if (t + 2u < nk) {\n${commit(0)}\n  }`, '  workgroupBarrier();',
      '  }'].join('\n');
  } else {
    loop = [g.prefetch ? fetchAt('0u') : '',
      '  for (var t = 0u; t < nk; t++) {',
      g.prefetch ? '' : fetchAt('t * BK'), commit(0), '  workgroupBarrier();',
      g.prefetch ? `  if (t + 1u < nk) {\n${fetchAt('(t + 1u) * BK')}\n  }` : '', stepOf(0), '  workgroupBarrier();',
      '  }'].join('\n');
  }

  // ---- results ----
  const rowOf = (i: number) => layout === 'kv' ? `m0 + ty + ${16 * i}u` : `m0 + 4u * ty + ${64 * (i >> 2) + (i & 3)}u`;
  const colOf = (j: number) => layout === 'kv' ? `tx + ${16 * j}u` : `4u * tx + ${64 * (j >> 2) + (j & 3)}u`;
  const plain: string[] = [];
  const gu: string[] = [];
  for (let i = 0; i < tm; i++) {
    for (let j = 0; j < tn; j++) {
      plain.push(`    put(${rowOf(i)}, nt * TILE_N + ${colOf(j)}, ${acc(i, j)});`);
      if (j < tn / 2) gu.push(`    put_gu(${rowOf(i)}, nt * (TILE_N / 2u) + ${colOf(j)}, ${acc(i, j)}, ${acc(i, j + tn / 2)});`);
    }
  }
  const store = `  if (GATE_UP) {\n${gu.join('\n')}\n  } else {\n${plain.join('\n')}\n  }`;

  const dbl = (t: string) => (g.db ? `array<${t}, 2>` : t);
  const shared = layout === 'kv'
    ? `var<workgroup> As: ${dbl(`array<array<array<vec4<f32>, ${kq + 1}>, 16>, ${tm}>`)}; // [i][ty][kq]: x row ty + 16 i, k = 4 kq .. 4 kq + 3\n` +
      `var<workgroup> Bs: ${dbl(`array<array<array<vec4<f32>, ${kq + 1}>, 16>, ${tn}>`)}; // [j][tx][kq]: W row tx + 16 j (dequantized)`
    : `var<workgroup> As: ${dbl(`array<array<vec4<f32>, ${4 * tm + 1}>, ${bk}>`)}; // [k][q]: x rows 4q .. 4q + 3 at k\n` +
      `var<workgroup> Bs: ${dbl(`array<array<vec4<f32>, ${4 * tn + 1}>, ${bk}>`)}; // [k][q]: W rows 4q .. 4q + 3 at k (dequantized)`;

  const head = `const BK: u32 = ${bk}u;\nconst TM: u32 = ${tm}u;\nconst TN: u32 = ${tn}u;\n` +
    `const TILE_M: u32 = ${tileM}u;\nconst TILE_N: u32 = ${tileN}u;\n`;
  const pieces: Record<string, string> = {
    X_ELEM: xfer.xElem,
    W_ELEM: xfer.wElem,
    SHARED: shared,
    DECLS: decls,
    LANES: g.sw
      ? '  let tx = (lid & 7u) | ((lid >> 2u) & 8u); // lanes 0-7 of a warp, then warp bit 0\n' +
        '  let ty = ((lid >> 3u) & 3u) | ((lid >> 4u) & 12u); // lanes 8-31 in 4 rows, then warp bits 1-2'
      : '  let tx = lid % 16u;\n  let ty = lid / 16u;',
    LOOP: loop,
    STORE: store,
  };
  const body = tiledSrc.replace(/\$([A-Z_]+)/g, (m, key: string) => {
    if (!(key in pieces)) throw new Error(`linear_gemm_tiled.wgsl: unknown placeholder ${m}`);
    return pieces[key];
  });
  return head + formatSrc + body;
}

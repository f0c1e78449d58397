/**
 * The 'tr' layout of the sampling kernels (kernels/sample_scores_tr.wgsl): tile
 * plan and WGSL generator. Same outputs and dispatch as the 'kv' kernels of
 * kernels/sample_scores.wgsl; SampleScores (kernels/sample_scores.ts) picks
 * the layout per kernel (ScoreOptions.layout) and launches either.
 */
import type { AttentionDims } from './attention_prefill.ts';
import type { ScoreKernel, ScorePlan } from './sample_scores.ts';
import source from './sample_scores_tr.wgsl?raw';

const COMP = ['x', 'y', 'z', 'w'];

/**
 * Generated pieces of kernels/sample_scores_tr.wgsl. Operand units: a vec4
 * of 4 dims of one tile row; with DK4 even, 2 adjacent lanes take the 2 vec4
 * of a row's 32-byte sector and 16 rows fill a warp (transposed stores hit 32
 * distinct banks with the odd vec4 row stride).
 */
function pieces(kind: ScoreKernel, pl: ScorePlan, group: number, db: boolean): Record<string, string> {
  const { bs, bt, rx, ry, dk, nt } = pl;
  const dk4 = dk / 4, tx = bs / rx, ty = bt / ry;
  const mode0 = kind === 'rows';
  const acc = (r: number, c: number) => `a${r}_${c}`;
  const xrow = (r: number) => `4u * xi + ${4 * tx * (r >> 2) + (r & 3)}u`;
  const ycol = (c: number) => `4u * yi + ${4 * ty * (c >> 2) + (c & 3)}u`;
  const slots = (rows: number) => Math.ceil((rows * dk4) / nt);
  const unit = (rows: number, s: number) => {
    const u = `lid + ${nt * s}u`;
    const row = dk4 % 2 === 0 ? `((${u}) >> 1u) % ${rows}u` : `(${u}) % ${rows}u`;
    const d4 = dk4 % 2 === 0 ? `((${u}) & 1u) + 2u * ((${u}) / ${2 * rows}u)` : `(${u}) / ${rows}u`;
    return { row, d4, ok: nt * (s + 1) > rows * dk4 ? `${u} < ${rows * dk4}u` : 'true' };
  };
  const PX = slots(bs), PY = slots(bt);
  const state: string[] = [];
  for (let r = 0; r < rx; r++) for (let c = 0; c < ry; c++) state.push(`  var ${acc(r, c)} = 0.0;`);
  for (const [op, n, rows] of [['x', PX, bs], ['y', PY, bt]] as const) {
    for (let s = 0; s < n; s++) {
      const u = unit(rows, s);
      state.push(`  let ${op}r${s} = ${u.row};`, `  let ${op}d${s} = ${u.d4};`, `  let ${op}ok${s} = ${u.ok};`, `  var p${op}${s} = vec4<f32>(0.0);`);
      if (op === 'y') state.push(`  var yo${s} = 0u;`);
    }
  }
  // X source offsets (fixed per thread): mode 0 the scaled q rows of its pairs, mode 1 the K columns.
  for (let s = 0; s < PX; s++) {
    if (mode0) state.push(`  let xu${s} = min(t0 + xr${s}, nAll - 1u);`, `  let xo${s} = q_off(xu${s} / p.group, job.kvh * p.group + xu${s} % p.group);`);
    else state.push(`  let xo${s} = job.kvh * p.capacity + min(j0 + xr${s}, max(p.nCols, 1u) - 1u);`);
  }
  for (let r = 0; r < rx; r++) {
    if (mode0) state.push(`  var m${r} = NEG_INF;`, `  var lw${r} = 0.0;`);
    else state.push(`  let jc${r} = j0 + ${xrow(r)};`);
    state.push(`  var l${r} = 0.0;`);
  }
  // Mode 0: row positions in workgroup memory (read by masked tiles only; fewer registers).
  if (mode0) state.push('  if (lid < BS) { ipos[lid] = p.pos + sample_row(min(t0 + lid, nAll - 1u) / p.group); }');
  if (!mode0) {
    state.push('  var curG = 0u;');
    for (let g = 0; g < group; g++) for (let r = 0; r < rx; r++) state.push(`  var lh${g}_${r} = 0.0;`);
  }

  const yoff = Array.from({ length: PY }, (_, s) => mode0
    ? `    yo${s} = job.kvh * p.capacity + min(itN * BT + yr${s}, job.iMax);`
    : `    yo${s} = y_q_off(job, itN, yr${s});`).join('\n');
  const load: string[] = [];
  for (let s = 0; s < PX; s++) {
    const e = mode0 ? `load_q4(xo${s}, chN * DK4 + xd${s}) * p.scale` : `load_k4(xo${s}, chN * DK4 + xd${s})`;
    load.push(`    if (xok${s}) { px${s} = ${e}; }`);
  }
  for (let s = 0; s < PY; s++) {
    const e = mode0 ? `load_k4(yo${s}, chN * DK4 + yd${s})` : `load_q4(yo${s}, chN * DK4 + yd${s}) * p.scale`;
    load.push(`    if (yok${s}) { py${s} = ${e}; }`);
  }
  const store = (b: number) => {
    const o: string[] = [];
    for (const [op, n] of [['x', PX], ['y', PY]] as const) {
      for (let s = 0; s < n; s++) {
        o.push(`    if (${op}ok${s}) {`, `      let q = ${op}r${s} >> 2u;`, `      let c = ${op}r${s} & 3u;`, `      let d = 4u * ${op}d${s};`);
        for (let k = 0; k < 4; k++) o.push(`      ${op}s${b}[d${k ? ` + ${k}u` : ''}][q][c] = p${op}${s}.${COMP[k]};`);
        o.push('    }');
      }
    }
    return o.join('\n');
  };
  const zero: string[] = [];
  for (let r = 0; r < rx; r++) zero.push(`      ${Array.from({ length: ry }, (_, c) => `${acc(r, c)} = 0.0;`).join(' ')}`);
  const dot = (b: number) => {
    const o: string[] = [];
    for (let k = 0; k < dk; k++) {
      o.push('    {');
      for (let i = 0; i < rx / 4; i++) o.push(`      let x${i} = xs${b}[${k}][xi${i ? ` + ${tx * i}u` : ''}];`);
      for (let j = 0; j < ry / 4; j++) o.push(`      let y${j} = ys${b}[${k}][yi${j ? ` + ${ty * j}u` : ''}];`);
      for (let r = 0; r < rx; r++) {
        for (let c = 0; c < ry; c++) o.push(`      ${acc(r, c)} = fma(x${r >> 2}.${COMP[r & 3]}, y${c >> 2}.${COMP[c & 3]}, ${acc(r, c)});`);
      }
      o.push('    }');
    }
    return o.join('\n');
  };
  return {
    STATE: state.join('\n'), YOFF: yoff, LOAD: load.join('\n'), STORE0: store(0), STORE1: db ? store(1) : '', ZERO: zero.join('\n'),
    DOT0: dot(0), DOT1: db ? dot(1) : '',
    EPILOGUE: mode0 ? epilogueRows(rx, ry, acc, ycol, xrow) : epilogueCols(rx, ry, group, acc),
    FINAL: mode0 ? finalRows(rx, xrow) : finalCols(rx, group, xrow),
  };
}

const maxTree = (xs: string[]): string => (xs.length === 1 ? xs[0] : `max(${maxTree(xs.slice(0, xs.length >> 1))}, ${maxTree(xs.slice(xs.length >> 1))})`);

/** Mode 0: online (max, sum, window sum) of each row over the tile's keys; unmasked when the tile lies below and outside every row's window. */
function epilogueRows(rx: number, ry: number, acc: (r: number, c: number) => string, ycol: (c: number) => string, xrow: (r: number) => string): string {
  const o: string[] = ['      let k0 = it * BT;', '      if (k0 + BT - 1u + p.window <= iMin) {'];
  for (let r = 0; r < rx; r++) {
    const cs = Array.from({ length: ry }, (_, c) => acc(r, c));
    o.push(`        let tm${r} = ${maxTree(cs)};`,
      `        if (tm${r} > m${r}) { let corr = exp2(m${r} - tm${r}); l${r} *= corr; lw${r} *= corr; m${r} = tm${r}; }`,
      `        l${r} += ${cs.map((a) => `exp2(${a} - m${r})`).join(' + ')};`);
  }
  o.push('      } else {');
  for (let c = 0; c < ry; c++) o.push(`        let kj${c} = k0 + ${ycol(c)};`);
  for (let r = 0; r < rx; r++) {
    o.push(`        let ipos${r} = ipos[${xrow(r)}];`);
    const cs = Array.from({ length: ry }, (_, c) => `select(NEG_INF, ${acc(r, c)}, kj${c} <= ipos${r})`);
    o.push(`        let tm${r} = ${maxTree(cs)};`,
      `        if (tm${r} > m${r}) { let corr = exp2(m${r} - tm${r}); l${r} *= corr; lw${r} *= corr; m${r} = tm${r}; }`);
    for (let c = 0; c < ry; c++) {
      o.push(`        { let e = select(0.0, exp2(${acc(r, c)} - m${r}), kj${c} <= ipos${r}); l${r} += e; lw${r} += select(0.0, e, kj${c} + p.window > ipos${r}); }`);
    }
  }
  o.push('      }');
  return o.join('\n');
}

/** Mode 1: P = exp2(s - lse) of the rows whose window leaves the column out, into the current head's sums. */
function epilogueCols(rx: number, ry: number, group: number, acc: (r: number, c: number) => string): string {
  const o: string[] = [
    '      // Unmasked when no padding row and no row of a head\'s first nSlow (window still on a column) is in the tile.',
    '      let a0 = it * BT;',
    '      let b0 = a0 + BT - 1u;',
    '      let fast = b0 < p.group * job.nR && a0 % job.nR >= nSlow && (b0 / job.nR == a0 / job.nR || nSlow == 0u);',
    '      let mo = (it & 1u) * BT; // the tile\'s row metadata',
  ];
  const flush: string[] = ['switch curG {'];
  for (let g = 0; g < group; g++) flush.push(`  case ${g}u: { ${Array.from({ length: rx }, (_, r) => `lh${g}_${r} += l${r};`).join(' ')} }`);
  flush.push('  default: {}', '}');
  for (const fast of [true, false]) {
    o.push(fast ? '      if (fast) {' : '      } else {');
    for (let c = 0; c < ry; c++) {
      o.push(`        {`, `          let t = mo + ycol${c};`, '          let hd = yhead[t];',
        `          if (hd != curG) {\n            ${flush.join('\n            ')}\n            ${Array.from({ length: rx }, (_, r) => `l${r} = 0.0;`).join(' ')}\n            curG = hd;\n          }`,
        '          let lse = ylse[t];');
      if (!fast) o.push('          let i = ypos[t];');
      for (let r = 0; r < rx; r++) {
        o.push(fast ? `          l${r} += exp2(${acc(r, c)} - lse);` : `          l${r} += select(0.0, exp2(${acc(r, c)} - lse), jc${r} + p.window <= i);`);
      }
      o.push('        }');
    }
  }
  o.push('      }');
  return o.join('\n');
}

/** Mode 0 end: combine the TY partial (max, sum, window sum) of each row (three rounds through `red`). */
function finalRows(rx: number, xrow: (r: number) => string): string {
  const o: string[] = ['  workgroupBarrier();'];
  for (let r = 0; r < rx; r++) o.push(`  red[yi * BS + ${xrow(r)}] = m${r};`);
  o.push('  workgroupBarrier();', '  if (lid < BS) {', '    var mm = NEG_INF;', '    for (var y = 0u; y < TY; y++) { mm = max(mm, red[y * BS + lid]); }', '    mrow[lid] = mm;', '  }', '  workgroupBarrier();');
  for (let r = 0; r < rx; r++) o.push(`  let w${r} = select(0.0, exp2(m${r} - mrow[${xrow(r)}]), l${r} > 0.0);`);
  o.push('  var ll = 0.0;', '  var lwin = 0.0;');
  for (const [v, out] of [['l', 'll'], ['lw', 'lwin']]) {
    for (let r = 0; r < rx; r++) o.push(`  red[yi * BS + ${xrow(r)}] = ${v}${r} * w${r};`);
    o.push('  workgroupBarrier();', `  if (lid < BS) { for (var y = 0u; y < TY; y++) { ${out} += red[y * BS + lid]; } }`, '  workgroupBarrier();');
  }
  o.push(`  let u = t0 + lid;
  if (lid < BS && u < nAll) {
    let row = (job.kvh * p.group + u % p.group) * p.nSamp + u / p.group;
    if (nwg.z > 1u) {
      // (a split whose keys all lie past the row leaves (NEG_INF, 0, 0))
      partials[wg.z * p.nHeads * p.nSamp + row] = vec4<f32>(mrow[lid], ll, lwin, 0.0);
    } else {
      rowStats[row * 2u] = mrow[lid] + log2(ll);
      rowStats[row * 2u + 1u] = lwin / ll;
    }
  }`);
  return o.join('\n');
}

/** Mode 1 end: per head, each column's sum over the TY threads; the group sums. */
function finalCols(rx: number, group: number, xrow: (r: number) => string): string {
  const o: string[] = ['  var gsum = 0.0;'];
  for (let g = 0; g < group; g++) {
    o.push('  workgroupBarrier();');
    for (let r = 0; r < rx; r++) o.push(`  red[yi * BS + ${xrow(r)}] = lh${g}_${r} + select(0.0, l${r}, curG == ${g}u);`);
    o.push('  workgroupBarrier();', '  if (lid < BS) {', '    var s = 0.0;', '    for (var y = 0u; y < TY; y++) { s += red[y * BS + lid]; }',
      `    if (j0 + lid < p.nCols) { colScores[(job.kvh * p.group + ${g}u) * p.capacity + j0 + lid] = s; }`, '    gsum += s;', '  }');
  }
  o.push('  if (lid < BS && j0 + lid < p.nCols) { groupScores[job.kvh * p.capacity + j0 + lid] = gsum; }');
  return o.join('\n');
}

/** `load_q4(off, d4)`: vec4 d4 of the q row starting at float offset `off`, zero past headDim. */
function qAccess(headDim: number): string {
  if (headDim % 4 === 0) {
    return `@group(0) @binding(0) var<storage, read> qv: array<vec4<f32>>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  if (d4 >= ${headDim / 4}u) { return vec4<f32>(0.0); }
  return qv[off / 4u + d4];
}\n`;
  }
  return `@group(0) @binding(0) var<storage, read> qv: array<f32>;
fn load_q4(off: u32, d4: u32) -> vec4<f32> {
  var x = vec4<f32>(0.0);
  for (var c = 0u; c < 4u; c++) { let d = d4 * 4u + c; if (d < ${headDim}u) { x[c] = qv[off + d]; } }
  return x;
}\n`;
}

export function trScoreSource(dims: AttentionDims, kind: ScoreKernel, plan: ScorePlan, header: (dims: AttentionDims, consts: Record<string, number>) => string): string {
  const db = plan.db;
  const group = dims.nHeads / dims.nKvHeads;
  const ty = plan.bt / plan.ry;
  const consts = {
    SMODE: kind === 'rows' ? 0 : 1, BS: plan.bs, BT: plan.bt, RX: plan.rx, RY: plan.ry, TX: plan.bs / plan.rx, TY: ty, NT: plan.nt,
    DK: plan.dk, DK4: plan.dk / 4, NCH: plan.nch, XQ: plan.xq, YQ: plan.yq, GX: plan.gx, GY: plan.gy, DB: db ? 1 : 0, DK1: db ? plan.dk : 1,
  };
  const p = pieces(kind, plan, group, db);
  let body = source.replace(/^\$([A-Z0-9]+)$/gm, (_, name: string) => {
    if (!(name in p)) throw new Error(`sample_scores_tr.wgsl: no piece ${name}`);
    return p[name];
  });
  body = body.replace(/ycol(\d+)/g, (_, c: string) => `4u * yi + ${4 * ty * (Number(c) >> 2) + (Number(c) & 3)}u`);
  return header(dims, consts) + qAccess(dims.headDim) + body;
}

/**
 * Plan of the x-in-registers matrix-vector kernel (linear_gemv_reg.wgsl):
 * whether a shape takes it and the constants kernels/linear.ts prepends.
 * Chosen by GemvConfig.reg (spelled 'r' / 'rN' in parseGemv; N = persistent
 * workgroups); tk = threads per row (a row's chunks are split over them,
 * XC = ceil(chunks / tk) per thread held with their x in registers),
 * rpt x ng = rows per block, unroll >= 2 = prefetch the next block,
 * 'ri' = the epilogue after each block (GemvConfig.storeEach), 'rg' = x
 * loaded from global memory directly (else staged: coalesced).
 */

/** Most x values a thread holds (XC * 4 * EPW f32 registers). */
export const GEMV_REG_X_MAX = 128;
/** Persistent workgroups when the config does not say ('r' without N): two per SM of a 132-SM H100. */
export const GEMV_REG_PERSIST = 264;

export interface GemvRegShape {
  tk: number; rpt: number; ng: number; unroll: number;
  /** Workgroups to launch (config's rN). */
  persist?: number;
  /** Epilogue after each block instead of after the last (config's 'ri'). */
  storeEach?: boolean;
  /** x loaded straight from global memory instead of staged through workgroup memory (config's 'rg'). */
  xGlobal?: boolean;
  /** The config asks for subgroup reductions and the device has them. */
  sg: boolean;
  sgMin: number;
  /** 16-byte chunks per weight row, elements per word. */
  nch: number; epw: number;
  /** Row blocks of the largest piece (ceil(n / rows per block)). */
  blocks: number;
  smemLimit: number;
}

export interface GemvRegPlan {
  /** Constants to prepend (after ROWS/TK/RPT/NG/UNROLL). */
  consts: string;
  /** Subgroup width of the reduction (1: no shuffles). */
  sgw: number;
  pwg: number;
}

const pow2 = (v: number) => v > 0 && (v & (v - 1)) === 0;

/** undefined where the shape does not fit (too many x registers or too much workgroup memory): the standard kernel runs. */
export function planGemvReg(s: GemvRegShape): GemvRegPlan | undefined {
  const xc = Math.ceil(s.nch / s.tk);
  if (xc * 4 * s.epw > GEMV_REG_X_MAX) return undefined;
  let sgw = 1;
  if (s.sg && pow2(s.sgMin)) {
    const w = Math.min(s.tk, s.sgMin);
    if (pow2(w) && s.tk % w === 0) sgw = w;
  }
  const pwg = Math.max(1, Math.min(s.blocks, s.persist ?? GEMV_REG_PERSIST));
  const maxb = Math.ceil(s.blocks / pwg);
  const nr = s.ng * s.rpt;
  // part + linear_gemv_common.wgsl's red and res (rows = 1).
  const stage = s.xGlobal !== true;
  const xStageBytes = stage ? s.tk * (s.epw + (s.epw === 1 ? 0 : 1)) * 16 : 16;
  const bytes = ((s.storeEach ? 1 : maxb) * nr * (s.tk / sgw) + nr * (s.tk + 1) + nr) * 4 + xStageBytes;
  if (bytes > s.smemLimit) return undefined;
  const halve = pow2(s.rpt) ? Math.min(Math.log2(s.rpt), Math.log2(sgw)) : 0;
  const consts = `const XC: u32 = ${xc}u;\nconst PWG: u32 = ${pwg}u;\nconst MAXB: u32 = ${maxb}u;\n` +
    `const PREFETCH: bool = ${s.unroll >= 2};\nconst STORE_EACH: bool = ${s.storeEach === true};\nconst X_STAGE: bool = ${stage};\nconst HALVE: u32 = ${halve}u;\n`;
  return { consts, sgw, pwg };
}

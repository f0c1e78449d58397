/**
 * Kernel tiers (issue 17). An engine runs one tier, chosen once at load from the device's
 * features (`kernels: 'auto'`) or forced by the `kernels` option for comparison:
 *  - 'f32': f32 storage and arithmetic everywhere; the reference, and what CI tests on
 *    SwiftShader.
 *  - 'f16': needs `shader-f16`. Weights dequantized to f16, f16 activations between ops, a
 *    native f16 KV cache; reductions, softmax and norms accumulate in f32.
 *  - 'tensor': needs `shader-f16`, `subgroups` and f16 subgroup matrices
 *    (`chromium-experimental-subgroup-matrix`). Prefill matrix multiplies and prefill
 *    attention on tensor cores (f16 operands, f32 accumulation); the rest as 'f32'.
 */
export type KernelTier = 'f32' | 'f16' | 'tensor';
/** The `kernels` option: a tier, or 'auto' (the fastest the device supports). */
export type KernelsOption = 'auto' | KernelTier;
export const KERNEL_TIERS: readonly KernelTier[] = ['f32', 'f16', 'tensor'];

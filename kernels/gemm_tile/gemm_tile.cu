// gemm_tile(TM, TN, TK): C = A @ B with an 8x8 thread block, each thread owning a TM x TN tile
// of C and copying TM x TK elements of A and TK x TN elements of B per K step.
//
// Every copy touches ADJACENT, UNGUARDED elements (problem sizes are multiples of the tile), so
// nvcc emits runs of scalar ld.global.f32 at consecutive immediate offsets interleaved with
// st.shared.f32: the material the vec_ld, vec_st, reorder_cp and cp_async transforms work on.
// No __restrict__ (nvcc would already emit ld.global.nc) and no __launch_bounds__ (the REGCAP and
// LAUNCH transforms add those directives).
//
// Build one variant: nvcc -ptx -arch=sm_80 -O3 -DTM=4 -DTN=6 -DTK=8 gemm_tile.cu

#ifndef TM
#error "define TM"
#endif
#ifndef TN
#error "define TN"
#endif
#ifndef TK
#error "define TK"
#endif

#define CAT_(a, b, c, d) a##_##b##_##c##_##d
#define CAT(a, b, c, d) CAT_(a, b, c, d)
#define KERNEL_NAME CAT(gemm_tile, TM, TN, TK)

#define BM (8 * TM)
#define BN (8 * TN)
#define BK (8 * TK)

extern "C" __global__ void KERNEL_NAME(const float* A, const float* B, float* C, int M, int N,
                                       int K)
{
    __shared__ float As[BM][BK];
    __shared__ float Bs[BK][BN];

    const int tx = threadIdx.x;
    const int ty = threadIdx.y;
    const int row0 = blockIdx.y * BM;
    const int col0 = blockIdx.x * BN;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            acc[i][j] = 0.0f;
        }
    }

    for (int k0 = 0; k0 < K; k0 += BK) {
#pragma unroll
        for (int i = 0; i < TM; ++i) {
#pragma unroll
            for (int k = 0; k < TK; ++k) {
                As[ty * TM + i][tx * TK + k] = A[(row0 + ty * TM + i) * K + k0 + tx * TK + k];
            }
        }
#pragma unroll
        for (int k = 0; k < TK; ++k) {
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                Bs[ty * TK + k][tx * TN + j] = B[(k0 + ty * TK + k) * N + col0 + tx * TN + j];
            }
        }
        __syncthreads();

        for (int kk = 0; kk < BK; ++kk) {
            float a[TM];
            float b[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) {
                a[i] = As[ty * TM + i][kk];
            }
#pragma unroll
            for (int j = 0; j < TN; ++j) {
                b[j] = Bs[kk][tx * TN + j];
            }
#pragma unroll
            for (int i = 0; i < TM; ++i) {
#pragma unroll
                for (int j = 0; j < TN; ++j) {
                    acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
                }
            }
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < TM; ++i) {
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            C[(row0 + ty * TM + i) * N + col0 + tx * TN + j] = acc[i][j];
        }
    }
}

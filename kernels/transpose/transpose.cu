// transpose(TILE, BLOCK_ROWS, T, PAD): out[c][r] = in[r][c] for a rows x cols matrix, the
// coalesced shared-memory transpose (NVIDIA's "An Efficient Matrix Transpose in CUDA C/C++").
//
// A TILE x BLOCK_ROWS thread block moves one TILE x TILE tile: each thread reads TILE/BLOCK_ROWS
// elements of a column of the tile (rows BLOCK_ROWS apart, coalesced along the input row) into
// shared memory, and after a barrier writes them back transposed (coalesced along the output
// row). PAD=1 adds a column to the shared tile so that the column-wise accesses hit distinct
// banks; PAD=0 is the bank-conflicted version. Every access is guarded, so any rows x cols works.
//
// Build one variant: nvcc -ptx -arch=sm_80 -O3 -DTILE=32 -DBLOCK_ROWS=8 -DHALF=0 -DPAD=1
//                    -DNAME=transpose_f32_t32x8 transpose.cu

#include <cuda_fp16.h>

#if !defined(TILE) || !defined(BLOCK_ROWS) || !defined(HALF) || !defined(PAD) || !defined(NAME)
#error "define TILE, BLOCK_ROWS, HALF, PAD and NAME"
#endif
#if TILE % BLOCK_ROWS
#error "BLOCK_ROWS must divide TILE"
#endif

#if HALF
typedef __half T;
#else
typedef float T;
#endif

extern "C" __global__ void NAME(const T* in, T* out, int rows, int cols)
{
    __shared__ T tile[TILE][TILE + PAD];

    int x = blockIdx.x * TILE + threadIdx.x;  // input column
    int y = blockIdx.y * TILE + threadIdx.y;  // input row
#pragma unroll
    for (int j = 0; j < TILE; j += BLOCK_ROWS) {
        if (x < cols && y + j < rows) {
            tile[threadIdx.y + j][threadIdx.x] = in[(size_t)(y + j) * cols + x];
        }
    }
    __syncthreads();

    x = blockIdx.y * TILE + threadIdx.x;  // output column = input row
    y = blockIdx.x * TILE + threadIdx.y;  // output row = input column
#pragma unroll
    for (int j = 0; j < TILE; j += BLOCK_ROWS) {
        if (x < rows && y + j < cols) {
            out[(size_t)(y + j) * rows + x] = tile[threadIdx.x][threadIdx.y + j];
        }
    }
}

// stencil2d(SHARED, POINTS, HALF, BX, BY, ITEMS): one Jacobi step on an ny x nx row-major grid.
//
//   out[y][x] = C0*in[y][x] + C1*(4 edge neighbours) [+ C2*(4 corner neighbours) for 9 points]
//
// for interior points; boundary points (first/last row and column) are copied (Dirichlet).
// A BX x BY thread block covers BX columns and BY*ITEMS rows: each thread computes ITEMS points
// BY rows apart (register blocking in y). Every point is guarded against the grid edge, so any
// nx, ny works. SHARED=1 first stages the block's (BY*ITEMS+2) x (BX+2) halo tile in shared
// memory (cooperative, guarded loads, then a barrier); SHARED=0 reads every neighbour from
// global memory. HALF=1 stores the grid as __half and computes in float.
//
// Build one variant:
//   nvcc -ptx -arch=sm_80 -O3 -DNAME=stencil2d_direct_5pt_f32_32x8_1 -DSHARED=0 -DPOINTS=5
//        -DHALF=0 -DBX=32 -DBY=8 -DITEMS=1 stencil2d.cu

#include <cuda_fp16.h>

#if !defined(NAME) || !defined(SHARED) || !defined(POINTS) || !defined(HALF)
#error "define NAME, SHARED, POINTS and HALF"
#endif
#if !defined(BX) || !defined(BY) || !defined(ITEMS)
#error "define BX, BY and ITEMS"
#endif

#if HALF
typedef __half T;
__device__ __forceinline__ float load(const T* p, int i) { return __half2float(p[i]); }
__device__ __forceinline__ T store(float v) { return __float2half(v); }
#else
typedef float T;
__device__ __forceinline__ float load(const T* p, int i) { return p[i]; }
__device__ __forceinline__ T store(float v) { return v; }
#endif

#if POINTS == 5
#define C0 0.5f
#define C1 0.125f
#elif POINTS == 9
#define C0 0.25f
#define C1 0.125f
#define C2 0.0625f
#else
#error "POINTS must be 5 or 9"
#endif

#define ROWS (BY * ITEMS)

extern "C" __global__ void NAME(const T* in, T* out, int nx, int ny)
{
    const int x = blockIdx.x * BX + threadIdx.x;
    const int y0 = blockIdx.y * ROWS + threadIdx.y;

#if SHARED
    __shared__ float tile[ROWS + 2][BX + 2];
    const int gx0 = blockIdx.x * BX - 1;
    const int gy0 = blockIdx.y * ROWS - 1;
    for (int ty = threadIdx.y; ty < ROWS + 2; ty += BY) {
        for (int tx = threadIdx.x; tx < BX + 2; tx += BX) {
            const int gx = gx0 + tx;
            const int gy = gy0 + ty;
            tile[ty][tx] = (gx >= 0 && gx < nx && gy >= 0 && gy < ny) ? load(in, gy * nx + gx) : 0.0f;
        }
    }
    __syncthreads();
#define AT(dy, dx) tile[threadIdx.y + k * BY + 1 + (dy)][threadIdx.x + 1 + (dx)]
#else
#define AT(dy, dx) load(in, (y + (dy)) * nx + x + (dx))
#endif

#pragma unroll
    for (int k = 0; k < ITEMS; ++k) {
        const int y = y0 + k * BY;
        if (x < nx && y < ny) {
            float v;
            if (x == 0 || y == 0 || x == nx - 1 || y == ny - 1) {
                v = AT(0, 0);
            } else {
                v = C0 * AT(0, 0) + C1 * (AT(-1, 0) + AT(1, 0) + AT(0, -1) + AT(0, 1));
#if POINTS == 9
                v += C2 * (AT(-1, -1) + AT(-1, 1) + AT(1, -1) + AT(1, 1));
#endif
            }
            out[y * nx + x] = store(v);
        }
    }
}

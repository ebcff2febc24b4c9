// Global -> shared staging in the everyday styles of issue 31's item 2 (cp_async's own test
// kernels; not in the corpus): reduction inputs staged with a zero fill, a row staged by a
// block-stride loop, a zero-padded row in an unrolled loop, a 2-D tile with a one-cell halo (zero at the border) and a tile loop
// that stages one slice of a vector per iteration.
//   nvcc -ptx -arch=sm_80 -O3 -lineinfo staging.cu -o staging.ptx

// One partial sum per block of 256: the inputs are staged (zero past n), then a tree.
extern "C" __global__ void stage_block_sum(const float* __restrict__ in, float* __restrict__ out,
                                           int n)
{
    __shared__ float s[256];
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    s[threadIdx.x] = i < n ? in[i] : 0.0f;
    __syncthreads();
    for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) s[threadIdx.x] += s[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) out[blockIdx.x] = s[0];
}

// One block (128 threads) per row of at most 1024: the row is staged, then every thread
// reads all of it for the row maximum and writes its columns minus that maximum.
extern "C" __global__ void stage_row_center(const float* __restrict__ in, float* __restrict__ out,
                                            int cols)
{
    __shared__ float row[1024];
    const float* src = in + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] = src[c];
    __syncthreads();
    float m = -INFINITY;
    for (int c = 0; c < cols; ++c) m = fmaxf(m, row[c]);
    float* dst = out + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < cols; c += blockDim.x) dst[c] = row[c] - m;
}

// A row (cols <= 2048) staged into a zero-padded 2048-float buffer by 128 threads with a
// compile-time stride (nvcc unrolls the copy loop 4x; each thread runs it 4 times), then
// out[c] = s[c] + s[2047 - c].
extern "C" __global__ void stage_row_mirror(const float* __restrict__ in, float* __restrict__ out,
                                            int cols)
{
    __shared__ float s[2048];
    const float* src = in + (size_t)blockIdx.x * cols;
    for (int c = threadIdx.x; c < 2048; c += 128) s[c] = c < cols ? src[c] : 0.0f;
    __syncthreads();
    float* dst = out + (size_t)blockIdx.x * 2048;
    for (int c = threadIdx.x; c < 2048; c += 128) dst[c] = s[c] + s[2047 - c];
}

// 5-point stencil from an 18x18 shared tile (16x16 threads, one-cell halo, zero outside).
extern "C" __global__ void stage_stencil5(const float* __restrict__ in, float* __restrict__ out,
                                          int nx, int ny)
{
    __shared__ float t[18][18];
    int x0 = blockIdx.x * 16 - 1, y0 = blockIdx.y * 16 - 1;
    for (int j = threadIdx.y; j < 18; j += 16)
        for (int i = threadIdx.x; i < 18; i += 16) {
            int gx = x0 + i, gy = y0 + j;
            t[j][i] = (gx >= 0 && gy >= 0 && gx < nx && gy < ny) ? in[gy * nx + gx] : 0.0f;
        }
    __syncthreads();
    int tx = threadIdx.x + 1, ty = threadIdx.y + 1;
    int x = x0 + tx, y = y0 + ty;
    if (x < nx && y < ny)
        out[y * nx + x] = ((t[ty][tx - 1] + t[ty][tx + 1]) + t[ty - 1][tx]) + t[ty + 1][tx];
}

// y = A x, one row per thread (128 threads); x is staged 128 at a time in a tile loop.
extern "C" __global__ void stage_matvec(const float* __restrict__ a, const float* __restrict__ x,
                                        float* __restrict__ y, int rows, int cols)
{
    __shared__ float xs[128];
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    float acc = 0.0f;
    for (int k0 = 0; k0 < cols; k0 += 128) {
        int k = k0 + threadIdx.x;
        xs[threadIdx.x] = k < cols ? x[k] : 0.0f;
        __syncthreads();
        int kn = min(128, cols - k0);
        if (r < rows)
            for (int kk = 0; kk < kn; ++kk) acc += a[(size_t)r * cols + k0 + kk] * xs[kk];
        __syncthreads();
    }
    if (r < rows) y[r] = acc;
}

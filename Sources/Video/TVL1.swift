import Foundation
import Tensor

/// A single-channel float image, row-major (H, W).
public struct GrayImage: Sendable {
    public var width: Int, height: Int
    public var pixels: [Float]

    public init(width: Int, height: Int, pixels: [Float]) {
        precondition(pixels.count == width * height, "image \(width)x\(height) needs \(width * height) pixels, got \(pixels.count)")
        self.width = width; self.height = height; self.pixels = pixels
    }

    public init(width: Int, height: Int, fill: Float = 0) {
        self.init(width: width, height: height, pixels: [Float](repeating: fill, count: width * height))
    }

    /// Luma (BT.601) of an RGB uint8 frame (H, W, 3).
    public init<C: Collection>(rgb: C, width: Int, height: Int) where C.Element == UInt8, C.Index == Int {
        var p = [Float](repeating: 0, count: width * height)
        var i = rgb.startIndex
        for k in 0..<(width * height) {
            p[k] = 0.299 * Float(rgb[i]) + 0.587 * Float(rgb[i + 1]) + 0.114 * Float(rgb[i + 2])
            i += 3
        }
        self.init(width: width, height: height, pixels: p)
    }

    @inline(__always) subscript(x: Int, y: Int) -> Float {
        get { pixels[y * width + x] }
        set { pixels[y * width + x] = newValue }
    }

    /// Bilinear sample with clamped borders.
    @inline(__always) func sample(_ x: Float, _ y: Float) -> Float {
        let xc = min(max(x, 0), Float(width - 1)), yc = min(max(y, 0), Float(height - 1))
        let x0 = min(Int(xc), width - 2 < 0 ? 0 : width - 2), y0 = min(Int(yc), height - 2 < 0 ? 0 : height - 2)
        let x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
        let fx = xc - Float(x0), fy = yc - Float(y0)
        let a = pixels[y0 * width + x0], b = pixels[y0 * width + x1]
        let c = pixels[y1 * width + x0], d = pixels[y1 * width + x1]
        return (a * (1 - fx) + b * fx) * (1 - fy) + (c * (1 - fx) + d * fx) * fy
    }
}

/// A dense flow field: u (horizontal) and v (vertical) displacement in pixels, from frame i to i+1.
public struct FlowField: Sendable {
    public var width: Int, height: Int
    public var u: [Float], v: [Float]

    public init(width: Int, height: Int, u: [Float], v: [Float]) {
        self.width = width; self.height = height; self.u = u; self.v = v
    }

    public init(width: Int, height: Int) {
        self.init(width: width, height: height, u: [Float](repeating: 0, count: width * height),
                  v: [Float](repeating: 0, count: width * height))
    }
}

/// TV-L1 optical flow (Zach, Pock, Bischof 2007) in the multi-scale, warped, duality-based form
/// of Sánchez, Meinhardt-Llopis, Facciolo (IPOL 2013) that OpenCV's DualTVL1 and denseflow use.
/// Defaults are OpenCV's.
public struct TVL1 : Sendable {
    /// Time step of the dual update (stable for <= 0.25).
    public var tau: Float = 0.25
    /// Weight of the data term: smaller gives smoother flow.
    public var lambda: Float = 0.15
    /// Coupling between the primal variable and its auxiliary copy.
    public var theta: Float = 0.3
    public var scales = 5
    public var warps = 5
    /// Stopping threshold on the mean squared change of the flow per inner iteration.
    public var epsilon: Float = 0.01
    public var innerIterations = 30
    public var outerIterations = 10
    public var scaleStep: Float = 0.8
    /// Median filter size applied to the flow after each warp (0 or 1: none).
    public var medianFilter = 5

    public init() {}

    /// Flow from `first` to `second` (same size).
    public func flow(_ first: GrayImage, _ second: GrayImage) -> FlowField {
        precondition(first.width == second.width && first.height == second.height, "TV-L1 frames differ in size")
        // Pyramids, finest first.
        var pyr0 = [first], pyr1 = [second]
        let sigma = 0.6 * (1 / (scaleStep * scaleStep) - 1).squareRoot()
        for _ in 1..<max(1, scales) {
            let prev0 = pyr0.last!, prev1 = pyr1.last!
            let w = Int((Float(prev0.width) * scaleStep).rounded()), h = Int((Float(prev0.height) * scaleStep).rounded())
            if w < 16 || h < 16 { break }
            pyr0.append(resize(gaussianBlur(prev0, sigma: sigma), width: w, height: h))
            pyr1.append(resize(gaussianBlur(prev1, sigma: sigma), width: w, height: h))
        }
        var field = FlowField(width: pyr0.last!.width, height: pyr0.last!.height)
        for level in stride(from: pyr0.count - 1, through: 0, by: -1) {
            let i0 = pyr0[level], i1 = pyr1[level]
            if field.width != i0.width || field.height != i0.height {
                field = upsample(field, width: i0.width, height: i0.height)
            }
            solve(i0, i1, &field)
        }
        return field
    }

    /// The warping and dual-primal iterations at one scale.
    func solve(_ i0: GrayImage, _ i1: GrayImage, _ field: inout FlowField) {
        let w = i0.width, h = i0.height, n = w * h
        let (i1x, i1y) = centeredGradient(i1)
        var p11 = [Float](repeating: 0, count: n), p12 = p11, p21 = p11, p22 = p11
        var i1w = p11, i1wx = p11, i1wy = p11, grad = p11, rhoC = p11
        var v1 = p11, v2 = p11, div1 = p11, div2 = p11
        let lt = lambda * theta, taut = tau / theta
        for _ in 0..<warps {
            // Warp the second image (and its gradient) by the current flow.
            field.u.withUnsafeBufferPointer { u in field.v.withUnsafeBufferPointer { v in
                i1w.withUnsafeMutableBufferPointer { iw in i1wx.withUnsafeMutableBufferPointer { ix in i1wy.withUnsafeMutableBufferPointer { iy in
                    grad.withUnsafeMutableBufferPointer { g in rhoC.withUnsafeMutableBufferPointer { rc in
                        let iwp = iw.baseAddress!, ixp = ix.baseAddress!, iyp = iy.baseAddress!, gp = g.baseAddress!, rcp = rc.baseAddress!
                        parallelFor(h, minPerThread: 16) { s, e in
                            for y in s..<e { for x in 0..<w {
                                let k = y * w + x
                                let fx = Float(x) + u[k], fy = Float(y) + v[k]
                                let a = i1.sample(fx, fy), gx = i1x.sample(fx, fy), gy = i1y.sample(fx, fy)
                                iwp[k] = a; ixp[k] = gx; iyp[k] = gy
                                gp[k] = gx * gx + gy * gy
                                rcp[k] = a - gx * u[k] - gy * v[k] - i0.pixels[k]
                            }}
                        }
                    }}
                }}}
            }}
            var iteration = 0
            var change = Float.infinity
            while change > epsilon * epsilon && iteration < innerIterations * outerIterations {
                iteration += 1
                // Thresholding step: v = argmin of the linearised data term around u.
                for k in 0..<n {
                    let rho = rhoC[k] + i1wx[k] * field.u[k] + i1wy[k] * field.v[k]
                    var d1: Float = 0, d2: Float = 0
                    if rho < -lt * grad[k] { d1 = lt * i1wx[k]; d2 = lt * i1wy[k] }
                    else if rho > lt * grad[k] { d1 = -lt * i1wx[k]; d2 = -lt * i1wy[k] }
                    else if grad[k] > 1e-10 { let f = -rho / grad[k]; d1 = f * i1wx[k]; d2 = f * i1wy[k] }
                    v1[k] = field.u[k] + d1; v2[k] = field.v[k] + d2
                }
                divergence(p11, p12, w, h, &div1)
                divergence(p21, p22, w, h, &div2)
                var sum: Float = 0
                for k in 0..<n {
                    let nu = v1[k] + theta * div1[k], nv = v2[k] + theta * div2[k]
                    sum += (nu - field.u[k]) * (nu - field.u[k]) + (nv - field.v[k]) * (nv - field.v[k])
                    field.u[k] = nu; field.v[k] = nv
                }
                change = sum / Float(n)
                // Dual update with forward differences, projected back onto the unit ball.
                dualStep(field.u, &p11, &p12, w, h, taut)
                dualStep(field.v, &p21, &p22, w, h, taut)
            }
            if medianFilter > 1 {
                field.u = median(field.u, w, h, medianFilter)
                field.v = median(field.v, w, h, medianFilter)
            }
        }
    }
}

// MARK: - image helpers

/// Centred differences, one-sided at the border.
func centeredGradient(_ img: GrayImage) -> (GrayImage, GrayImage) {
    let w = img.width, h = img.height
    var gx = GrayImage(width: w, height: h), gy = GrayImage(width: w, height: h)
    for y in 0..<h {
        for x in 0..<w {
            let xl = max(x - 1, 0), xr = min(x + 1, w - 1), yu = max(y - 1, 0), yd = min(y + 1, h - 1)
            gx[x, y] = (img[xr, y] - img[xl, y]) / Float(max(xr - xl, 1))
            gy[x, y] = (img[x, yd] - img[x, yu]) / Float(max(yd - yu, 1))
        }
    }
    return (gx, gy)
}

/// div p with backward differences (the adjoint of the forward-difference gradient).
func divergence(_ p1: [Float], _ p2: [Float], _ w: Int, _ h: Int, _ out: inout [Float]) {
    for y in 0..<h {
        for x in 0..<w {
            let k = y * w + x
            let a = x == 0 ? p1[k] : (x == w - 1 ? -p1[k - 1] : p1[k] - p1[k - 1])
            let b = y == 0 ? p2[k] : (y == h - 1 ? -p2[k - w] : p2[k] - p2[k - w])
            out[k] = a + b
        }
    }
}

/// p = (p + taut * grad u) / (1 + taut * |grad u|), forward differences (zero at the far border).
func dualStep(_ u: [Float], _ p1: inout [Float], _ p2: inout [Float], _ w: Int, _ h: Int, _ taut: Float) {
    for y in 0..<h {
        for x in 0..<w {
            let k = y * w + x
            let ux = x < w - 1 ? u[k + 1] - u[k] : 0
            let uy = y < h - 1 ? u[k + w] - u[k] : 0
            let norm = 1 + taut * (ux * ux + uy * uy).squareRoot()
            p1[k] = (p1[k] + taut * ux) / norm
            p2[k] = (p2[k] + taut * uy) / norm
        }
    }
}

/// Separable Gaussian blur with clamped borders.
public enum Blur {
    public static func gaussian(_ img: GrayImage, sigma: Float) -> GrayImage { gaussianBlur(img, sigma: sigma) }
}

func gaussianBlur(_ img: GrayImage, sigma: Float) -> GrayImage {
    guard sigma > 0 else { return img }
    let radius = max(1, Int((3 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { Foundation.exp(-Float($0 * $0) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    let w = img.width, h = img.height
    var tmp = GrayImage(width: w, height: h), out = GrayImage(width: w, height: h)
    for y in 0..<h { for x in 0..<w {
        var s: Float = 0
        for (i, k) in kernel.enumerated() { s += k * img[min(max(x + i - radius, 0), w - 1), y] }
        tmp[x, y] = s
    }}
    for y in 0..<h { for x in 0..<w {
        var s: Float = 0
        for (i, k) in kernel.enumerated() { s += k * tmp[x, min(max(y + i - radius, 0), h - 1)] }
        out[x, y] = s
    }}
    return out
}

/// Bilinear resize (pixel centres aligned).
func resize(_ img: GrayImage, width: Int, height: Int) -> GrayImage {
    var out = GrayImage(width: width, height: height)
    let sx = Float(img.width) / Float(width), sy = Float(img.height) / Float(height)
    for y in 0..<height { for x in 0..<width {
        out[x, y] = img.sample((Float(x) + 0.5) * sx - 0.5, (Float(y) + 0.5) * sy - 0.5)
    }}
    return out
}

/// Resizes a flow field and scales its vectors by the size ratio.
func upsample(_ f: FlowField, width: Int, height: Int) -> FlowField {
    let u = resize(GrayImage(width: f.width, height: f.height, pixels: f.u), width: width, height: height)
    let v = resize(GrayImage(width: f.width, height: f.height, pixels: f.v), width: width, height: height)
    let rx = Float(width) / Float(f.width), ry = Float(height) / Float(f.height)
    return FlowField(width: width, height: height, u: u.pixels.map { $0 * rx }, v: v.pixels.map { $0 * ry })
}

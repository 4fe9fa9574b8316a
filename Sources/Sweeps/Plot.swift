import CCairo
import Foundation
import Training

/// PNG charts drawn with Cairo: a dot plot (a metric per category, each seed a dot, the mean a
/// bar, the spread a line) and a line plot (curves over steps). Sized for a report page.
enum Plot {
    static let width = 760, height = 420
    static let margin = (left: 70.0, right: 20.0, top: 40.0, bottom: 90.0)

    /// A qualitative palette (Tableau 10), as RGB 0...1.
    static let palette: [(Double, Double, Double)] = [
        (0.12, 0.47, 0.71), (1.00, 0.50, 0.05), (0.17, 0.63, 0.17), (0.84, 0.15, 0.16), (0.58, 0.40, 0.74),
        (0.55, 0.34, 0.29), (0.89, 0.47, 0.76), (0.50, 0.50, 0.50), (0.74, 0.74, 0.13), (0.09, 0.75, 0.81),
    ]

    /// A drawing surface with the plot area's axes: y from `yRange`, x from `xRange`.
    final class Canvas {
        let surface: OpaquePointer
        let cr: OpaquePointer
        let xRange: ClosedRange<Double>, yRange: ClosedRange<Double>
        var plotWidth: Double { Double(Plot.width) - Plot.margin.left - Plot.margin.right }
        var plotHeight: Double { Double(Plot.height) - Plot.margin.top - Plot.margin.bottom }

        init(xRange: ClosedRange<Double>, yRange: ClosedRange<Double>) {
            surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, Int32(Plot.width), Int32(Plot.height))
            cr = cairo_create(surface)
            self.xRange = xRange; self.yRange = yRange
            cairo_set_source_rgb(cr, 1, 1, 1)
            cairo_paint(cr)
            cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL)
        }

        deinit { cairo_destroy(cr); cairo_surface_destroy(surface) }

        func x(_ v: Double) -> Double { Plot.margin.left + (v - xRange.lowerBound) / max(xRange.upperBound - xRange.lowerBound, 1e-12) * plotWidth }
        func y(_ v: Double) -> Double { Plot.margin.top + plotHeight - (v - yRange.lowerBound) / max(yRange.upperBound - yRange.lowerBound, 1e-12) * plotHeight }

        func color(_ c: (Double, Double, Double), alpha: Double = 1) { cairo_set_source_rgba(cr, c.0, c.1, c.2, alpha) }

        func line(_ points: [(Double, Double)], width: Double = 1.5) {
            guard let first = points.first else { return }
            cairo_set_line_width(cr, width)
            cairo_move_to(cr, x(first.0), y(first.1))
            for p in points.dropFirst() { cairo_line_to(cr, x(p.0), y(p.1)) }
            cairo_stroke(cr)
        }

        func dot(_ px: Double, _ py: Double, radius: Double = 4) {
            cairo_arc(cr, x(px), y(py), radius, 0, 2 * .pi)
            cairo_fill(cr)
        }

        /// Text at device coordinates; `anchor` 0 = left, 0.5 = centre, 1 = right; `angle` in radians.
        func text(_ s: String, at px: Double, _ py: Double, size: Double = 12, anchor: Double = 0, angle: Double = 0) {
            cairo_set_font_size(cr, size)
            var extents = cairo_text_extents_t()
            cairo_text_extents(cr, s, &extents)
            cairo_save(cr)
            cairo_move_to(cr, px, py)
            cairo_rotate(cr, angle)
            cairo_rel_move_to(cr, -anchor * extents.x_advance, 0)
            cairo_show_text(cr, s)
            cairo_restore(cr)
        }

        /// Frame, y ticks and grid, title and y label.
        func axes(title: String, yLabel: String, xLabel: String? = nil) {
            cairo_set_source_rgb(cr, 0, 0, 0)
            text(title, at: Double(Plot.width) / 2, 24, size: 15, anchor: 0.5)
            text(yLabel, at: 18, Plot.margin.top + plotHeight / 2, size: 12, anchor: 0.5, angle: -.pi / 2)
            if let xLabel { text(xLabel, at: Plot.margin.left + plotWidth / 2, Double(Plot.height) - 12, size: 12, anchor: 0.5) }
            for t in Plot.ticks(yRange) {
                cairo_set_source_rgb(cr, 0.88, 0.88, 0.88)
                line([(xRange.lowerBound, t), (xRange.upperBound, t)], width: 1)
                cairo_set_source_rgb(cr, 0, 0, 0)
                text(Plot.label(t), at: Plot.margin.left - 6, y(t) + 4, size: 11, anchor: 1)
            }
            cairo_set_source_rgb(cr, 0, 0, 0)
            cairo_set_line_width(cr, 1)
            cairo_rectangle(cr, Plot.margin.left, Plot.margin.top, plotWidth, plotHeight)
            cairo_stroke(cr)
        }

        func write(to url: URL) throws {
            let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(getpid()).tmp")
            guard cairo_surface_write_to_png(surface, tmp.path) == CAIRO_STATUS_SUCCESS else {
                throw TrainingError("\(url.path): cannot write PNG")
            }
            guard rename(tmp.path, url.path) == 0 else { throw TrainingError("\(url.path): cannot write PNG") }
        }
    }

    /// About five round tick values covering `range`.
    static func ticks(_ range: ClosedRange<Double>) -> [Double] {
        let span = range.upperBound - range.lowerBound
        guard span > 0 else { return [range.lowerBound] }
        let raw = span / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var t = ceil(range.lowerBound / step) * step, out: [Double] = []
        while t <= range.upperBound + step * 1e-9 { out.append(t); t += step }
        return out
    }

    static func label(_ v: Double) -> String {
        abs(v) >= 100 || v == v.rounded() ? String(format: "%.0f", v) : String(format: abs(v) < 1 ? "%.2f" : "%.1f", v)
    }

    /// A padded range around `values` (a flat range gets some height).
    static func range(_ values: [Double], includeZero: Bool = false) -> ClosedRange<Double> {
        var lo = values.min() ?? 0, hi = values.max() ?? 1
        if includeZero { lo = min(lo, 0) }
        if hi - lo < 1e-9 { lo -= 0.5; hi += 0.5 }
        let pad = (hi - lo) * 0.08
        return (includeZero && lo >= 0 ? lo : lo - pad)...(hi + pad)
    }

    /// Each category's values (one per seed) as dots, their mean as a bar and their range as a
    /// vertical line; category names under the axis, slanted.
    /// `references` are dashed horizontal lines across the plot, labelled at their right end
    /// (the random-init floor, the baseline's mean).
    static func dots(title: String, yLabel: String, categories: [String], values: [[Double]], references: [(label: String, value: Double)] = [],
                     to url: URL) throws {
        let all = values.flatMap { $0 } + references.map(\.value)
        let canvas = Canvas(xRange: -0.5...(Double(max(categories.count, 1)) - 0.5), yRange: range(all, includeZero: true))
        canvas.axes(title: title, yLabel: yLabel)
        var labelled: [Double] = []
        for r in references {
            cairo_set_source_rgba(canvas.cr, 0.35, 0.35, 0.35, 1)
            var dash: [Double] = [6, 4]
            cairo_set_dash(canvas.cr, &dash, 2, 0)
            canvas.line([(-0.5, r.value), (Double(max(categories.count, 1)) - 0.5, r.value)], width: 1.2)
            cairo_set_dash(canvas.cr, nil, 0, 0)
            // just above its line; one that would overprint a label before moves away from it, up
            // when its line is the higher one, until it clears every label
            let y = canvas.y(r.value)
            var labelY = y - 4, away: Double? = nil
            while let clash = labelled.first(where: { abs($0 - labelY) < 12 }) {
                let step = away ?? (y < clash ? -12 : 12)
                away = step
                labelY = clash + step
            }
            labelled.append(labelY)
            canvas.text(r.label, at: canvas.x(Double(max(categories.count, 1)) - 0.5) - 4, labelY, size: 10, anchor: 1)
        }
        for (i, vs) in values.enumerated() where !vs.isEmpty {
            let c = palette[i % palette.count], x = Double(i)
            canvas.color(c, alpha: 0.5)
            canvas.line([(x, vs.min()!), (x, vs.max()!)], width: 3)
            let mean = vs.reduce(0, +) / Double(vs.count)
            canvas.color(c)
            canvas.line([(x - 0.25, mean), (x + 0.25, mean)], width: 3)
            for (k, v) in vs.enumerated() { canvas.dot(x + (Double(k) - Double(vs.count - 1) / 2) * 0.08, v) }
        }
        cairo_set_source_rgb(canvas.cr, 0, 0, 0)
        for (i, name) in categories.enumerated() {
            canvas.text(name, at: canvas.x(Double(i)), Double(height) - margin.bottom + 14, size: 11, anchor: 0, angle: .pi / 7)
        }
        try canvas.write(to: url)
    }

    /// Curves (x, y) with a legend of their groups: each curve drawn in its group's colour.
    static func curves(title: String, xLabel: String, yLabel: String, curves: [(group: Int, points: [(Double, Double)])],
                       groups: [String], to url: URL) throws {
        let xs = curves.flatMap { $0.points.map(\.0) }, ys = curves.flatMap { $0.points.map(\.1) }
        let canvas = Canvas(xRange: (xs.min() ?? 0)...max(xs.max() ?? 1, (xs.min() ?? 0) + 1), yRange: range(ys))
        canvas.axes(title: title, yLabel: yLabel, xLabel: xLabel)
        for t in ticks(canvas.xRange) {
            cairo_set_source_rgb(canvas.cr, 0, 0, 0)
            canvas.text(label(t), at: canvas.x(t), Double(height) - margin.bottom + 16, size: 11, anchor: 0.5)
        }
        for c in curves {
            canvas.color(palette[c.group % palette.count], alpha: 0.8)
            canvas.line(c.points, width: 1.5)
        }
        // legend below the axis label
        var lx = margin.left
        for (i, g) in groups.enumerated() {
            canvas.color(palette[i % palette.count])
            cairo_rectangle(canvas.cr, lx, Double(height) - 48, 12, 12)
            cairo_fill(canvas.cr)
            cairo_set_source_rgb(canvas.cr, 0, 0, 0)
            canvas.text(g, at: lx + 16, Double(height) - 38, size: 11)
            lx += 28 + Double(g.count) * 6.5
        }
        try canvas.write(to: url)
    }
}

import Foundation
import Training

/// A sweep's reports, gathered from whatever runs are complete (any process, any shard):
/// `results.csv` (a row per run), `results.json`, `results.md` (mean and spread over seeds per
/// variant, the best in bold), a PNG per metric and one of every run's loss curve, and
/// `report.html` showing the table and the plots. Each file replaced atomically.
public enum AblationReport {
    public struct RunRecord: Codable, Equatable {
        public var variant: String, seed: Int
        /// complete, failed or pending
        public var status: String
        public var metrics: [String: Double]
        public var error: String?
        public var seconds: Double?
    }

    public struct VariantSummary: Codable, Equatable {
        public var variant: String
        public var overrides: [String: String]
        public var seedsComplete: Int
        public var mean: [String: Double], spread: [String: Double]
    }

    /// Every run of the sweep with its status.
    public static func gather(_ sweep: Sweep) -> [RunRecord] {
        sweep.runs.map { run in
            let files = RunFiles(run.folder)
            if let r = files.readResult() {
                return RunRecord(variant: run.variant.name, seed: run.seed, status: "complete", metrics: r.metrics, error: nil, seconds: r.seconds)
            }
            if let e = files.readFailure() {
                return RunRecord(variant: run.variant.name, seed: run.seed, status: "failed", metrics: [:], error: e, seconds: nil)
            }
            return RunRecord(variant: run.variant.name, seed: run.seed, status: "pending", metrics: [:], error: nil, seconds: nil)
        }
    }

    /// Mean and half the range over each variant's complete seeds.
    public static func summarize(_ sweep: Sweep, _ records: [RunRecord]) -> [VariantSummary] {
        sweep.variants.map { v in
            let done = records.filter { $0.variant == v.name && $0.status == "complete" }
            var mean: [String: Double] = [:], spread: [String: Double] = [:]
            for m in sweep.metrics {
                let values = done.compactMap { $0.metrics[m.rawValue] }
                guard !values.isEmpty else { continue }
                mean[m.rawValue] = values.reduce(0, +) / Double(values.count)
                spread[m.rawValue] = (values.max()! - values.min()!) / 2
            }
            return VariantSummary(variant: v.name, overrides: v.overrideValues,
                                  seedsComplete: done.count, mean: mean, spread: spread)
        }
    }

    /// Writes every report; returns how many runs are complete, failed and pending.
    @discardableResult
    public static func write(_ sweep: Sweep) throws -> (complete: Int, failed: Int, pending: Int) {
        let fm = FileManager.default
        try fm.createDirectory(at: sweep.output, withIntermediateDirectories: true)
        let records = gather(sweep)
        let summaries = summarize(sweep, records)
        try writeAtomically(Data(csv(sweep, records).utf8), to: sweep.output.appendingPathComponent("results.csv"))
        struct Document: Codable { var sweep: String, file: String, metrics: [String], runs: [RunRecord], variants: [VariantSummary] }
        let doc = Document(sweep: sweep.name, file: sweep.file, metrics: sweep.metrics.map(\.rawValue), runs: records, variants: summaries)
        try writeAtomically(try JSONEncoder.sorted.encode(doc), to: sweep.output.appendingPathComponent("results.json"))
        try writeAtomically(Data(markdown(sweep, records, summaries).utf8), to: sweep.output.appendingPathComponent("results.md"))
        let plots = try writePlots(sweep, records)
        try writeAtomically(Data(html(sweep, records, summaries, plots: plots).utf8), to: sweep.output.appendingPathComponent("report.html"))
        return (records.filter { $0.status == "complete" }.count, records.filter { $0.status == "failed" }.count,
                records.filter { $0.status == "pending" }.count)
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { ",\"\n".contains($0) }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    static func csv(_ sweep: Sweep, _ records: [RunRecord]) -> String {
        let overrides = Dictionary(sweep.variants.map { ($0.name, $0.overrideValues) },
                                   uniquingKeysWith: { $1 })
        var lines = [(["variant", "seed", "status"] + sweep.variedKeys + sweep.metrics.map(\.rawValue) + ["seconds", "error"]).joined(separator: ",")]
        for r in records {
            let keys = sweep.variedKeys.map { overrides[r.variant]?[$0] ?? "" }
            let values = sweep.metrics.map { m in r.metrics[m.rawValue].map { String(format: "%.6f", $0) } ?? "" }
            let fields = [r.variant, "\(r.seed)", r.status] + keys + values + [r.seconds.map { String(format: "%.1f", $0) } ?? "", r.error ?? ""]
            lines.append(fields.map(csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// "mean ± spread" of a metric, in % for fractions.
    static func cell(_ s: VariantSummary, _ m: Sweep.Column) -> String? {
        guard let mean = s.mean[m.rawValue], let spread = s.spread[m.rawValue] else { return nil }
        let scale = m.isFraction ? 100.0 : 1.0
        return String(format: m.isFraction ? "%.1f ± %.1f" : "%.3f ± %.3f", mean * scale, spread * scale)
    }

    /// The best mean of each metric (nil with fewer than two variants to compare).
    static func best(_ summaries: [VariantSummary], _ m: Sweep.Column) -> Double? {
        // a loss differs in its terms from variant to variant: not ranked
        guard m.metric != .finalLoss else { return nil }
        let means = summaries.compactMap { $0.mean[m.rawValue] }
        guard means.count > 1 else { return nil }
        return m.higherIsBetter ? means.max() : means.min()
    }

    /// The table's rows: variant, seeds done, each metric's cell, then the varied keys (last, so
    /// a sweep of many keys keeps its figures in view).
    static func rows(_ sweep: Sweep, _ summaries: [VariantSummary]) -> (header: [String], rows: [[(text: String, bold: Bool)]]) {
        let header = ["variant", "seeds"] + sweep.metrics.map(\.title) + sweep.variedKeys
        let bests = sweep.metrics.map { best(summaries, $0) }
        let rows = summaries.map { s -> [(text: String, bold: Bool)] in
            var row: [(text: String, bold: Bool)] = [(s.variant, false), ("\(s.seedsComplete)/\(sweep.seeds.count)", false)]
            // ties are all bold
            for (m, b) in zip(sweep.metrics, bests) { row.append((cell(s, m) ?? "-", b != nil && s.mean[m.rawValue] == b)) }
            row += sweep.variedKeys.map { (s.overrides[$0] ?? "-", false) }
            return row
        }
        return (header, rows)
    }

    static func caption(_ sweep: Sweep, _ records: [RunRecord]) -> String {
        let complete = records.filter { $0.status == "complete" }.count, failed = records.filter { $0.status == "failed" }.count
        return "\(sweep.variants.count) variants x \(sweep.seeds.count) seeds (\(sweep.seeds.map(String.init).joined(separator: ", "))): \(complete) runs complete, \(failed) failed, \(records.count - complete - failed) pending. Mean ± half the range over the seeds complete; the best mean of each column in bold (ties all bold)."
    }

    static func markdown(_ sweep: Sweep, _ records: [RunRecord], _ summaries: [VariantSummary]) -> String {
        let (header, rows) = rows(sweep, summaries)
        var out = "# \(sweep.name)\n\n`\(sweep.file)`: \(caption(sweep, records))\n\n"
        out += "| " + header.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: header.count) + "\n"
        for row in rows { out += "| " + row.map { $0.bold ? "**\($0.text)**" : $0.text }.joined(separator: " | ") + " |\n" }
        let failed = records.filter { $0.status == "failed" }
        if !failed.isEmpty {
            out += "\nFailed runs:\n\n" + failed.map { "- `\($0.variant)/seed-\($0.seed)`: \($0.error ?? "")" }.joined(separator: "\n") + "\n"
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func html(_ sweep: Sweep, _ records: [RunRecord], _ summaries: [VariantSummary], plots: [String]) -> String {
        let (header, rows) = rows(sweep, summaries)
        var out = """
            <!DOCTYPE html>
            <html><head><meta charset="utf-8"><title>\(escape(sweep.name))</title>
            <style>
            body { font-family: sans-serif; margin: 24px; color: #222; }
            table { border-collapse: collapse; margin: 12px 0; }
            th, td { border: 1px solid #ccc; padding: 4px 10px; text-align: right; white-space: nowrap; }
            th { background: #f3f3f3; } td:first-child, th:first-child { text-align: left; }
            .failed { color: #b00; } img { margin: 8px 8px 0 0; border: 1px solid #ddd; }
            </style></head><body>
            <h1>\(escape(sweep.name))</h1>
            <p><code>\(escape(sweep.file))</code>: \(escape(caption(sweep, records)))</p>
            <table><tr>\(header.map { "<th>\(escape($0))</th>" }.joined())</tr>

            """
        for row in rows {
            out += "<tr>" + row.map { $0.bold ? "<td><b>\(escape($0.text))</b></td>" : "<td>\(escape($0.text))</td>" }.joined() + "</tr>\n"
        }
        out += "</table>\n"
        let failed = records.filter { $0.status == "failed" }
        if !failed.isEmpty {
            out += "<h2>Failed runs</h2><ul class=\"failed\">" + failed.map { "<li><code>\(escape($0.variant))/seed-\($0.seed)</code>: \(escape($0.error ?? ""))</li>" }.joined() + "</ul>\n"
        }
        out += "<h2>Plots</h2>\n" + plots.map { "<img src=\"\($0)\" alt=\"\($0)\">" }.joined(separator: "\n") + "\n</body></html>\n"
        return out
    }

    /// A PNG per metric (each seed a dot) and one of every run's loss curve; returns their names.
    static func writePlots(_ sweep: Sweep, _ records: [RunRecord]) throws -> [String] {
        var names: [String] = []
        let categories = sweep.variants.map(\.name)
        for m in sweep.metrics {
            let values = categories.map { v in
                records.filter { $0.variant == v && $0.status == "complete" }.compactMap { $0.metrics[m.rawValue] }.map { m.isFraction ? 100 * $0 : $0 }
            }
            guard values.contains(where: { !$0.isEmpty }) else { continue }
            let name = "plot-\(m.rawValue).png"
            try Plot.dots(title: "\(sweep.name): \(m.title) per variant (each dot a seed)", yLabel: m.title, categories: categories,
                          values: values, to: sweep.output.appendingPathComponent(name))
            names.append(name)
        }
        var curves: [(group: Int, points: [(Double, Double)])] = []
        for run in sweep.runs {
            let curve = RunFiles(run.folder).lossCurve()
            guard !curve.isEmpty, let g = categories.firstIndex(of: run.variant.name) else { continue }
            curves.append((g, curve.map { (Double($0.step), $0.loss) }))
        }
        if !curves.isEmpty {
            let name = "loss-curves.png"
            try Plot.curves(title: "\(sweep.name): training loss of every run", xLabel: "step", yLabel: "loss", curves: curves,
                            groups: categories, to: sweep.output.appendingPathComponent(name))
            names.append(name)
        }
        return names
    }
}

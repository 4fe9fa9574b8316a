import Evaluation
import Foundation
import Tensor
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
        /// Each test video's outcome (complete runs that kept it).
        public var perVideo: Evaluation.PerVideo?
    }

    /// A variant against the sweep's baseline on one metric: the mean over their common seeds of
    /// the difference of per-video outcomes, and its 95 % bootstrap interval, resampling seeds and
    /// test videos (the same videos for both: paired by video).
    public struct PairedDifference: Codable, Equatable {
        public var variant: String, metric: String
        public var mean: Double, low: Double, high: Double
        public var seeds: Int, videos: Int
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
                return RunRecord(variant: run.variant.name, seed: run.seed, status: "complete", metrics: r.metrics, error: nil, seconds: r.seconds,
                                 perVideo: r.perVideo)
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
            return summary(v.name, overrides: v.overrideValues, seeds: done.map(\.metrics), metrics: sweep.metrics)
        }
    }

    /// Mean and half the range of each metric over `seeds` (one figure set per seed).
    static func summary(_ name: String, overrides: [String: String], seeds: [[String: Double]], metrics: [Sweep.Column]) -> VariantSummary {
        var mean: [String: Double] = [:], spread: [String: Double] = [:]
        for m in metrics {
            let values = seeds.compactMap { $0[m.rawValue] }
            guard !values.isEmpty else { continue }
            mean[m.rawValue] = values.reduce(0, +) / Double(values.count)
            spread[m.rawValue] = (values.max()! - values.min()!) / 2
        }
        return VariantSummary(variant: name, overrides: overrides, seedsComplete: seeds.count, mean: mean, spread: spread)
    }

    /// The floor's evaluations kept so far, by seed.
    static func floor(_ sweep: Sweep) -> [Int: Evaluation.Report] {
        var found: [Int: Evaluation.Report] = [:]
        for seed in sweep.seeds {
            if let data = try? Data(contentsOf: sweep.floorFile(seed: seed)), let r = try? JSONDecoder().decode(Evaluation.Report.self, from: data) {
                found[seed] = r
            }
        }
        return found
    }

    /// The floor as a summary row: its probe, retrieval and kNN figures over the seeds evaluated.
    static func floorSummary(_ sweep: Sweep, _ floor: [Int: Evaluation.Report]) -> VariantSummary? {
        guard !floor.isEmpty else { return nil }
        let seeds = floor.map { seed, report in
            var metrics = RunFiles.metrics(of: report, dataset: nil)
            if let data = try? Data(contentsOf: sweep.floorViewsFile(seed: seed)),
               let views = try? JSONDecoder().decode(Evaluation.ViewsReport.self, from: data) {
                metrics.merge(Ablation.motionTestMetrics(views)) { $1 }
            }
            return metrics
        }
        return summary("random init (floor)", overrides: [:], seeds: seeds, metrics: sweep.metrics)
    }

    /// Every variant against the baseline, on the probe's and the kNN's per-video outcomes.
    static func paired(_ sweep: Sweep, _ records: [RunRecord], resamples: Int = 2000) -> [PairedDifference] {
        guard let baseline = sweep.baseline else { return [] }
        var out: [PairedDifference] = []
        for v in sweep.variants where v.name != baseline {
            for (metric, outcome) in [(Sweep.Metric.probeTop1, \Evaluation.PerVideo.probe), (.knnTop1, \Evaluation.PerVideo.knn)] {
                var pairs: [(variant: [Bool], baseline: [Bool])] = []
                for seed in sweep.seeds {
                    guard let a = records.first(where: { $0.variant == v.name && $0.seed == seed })?.perVideo,
                          let b = records.first(where: { $0.variant == baseline && $0.seed == seed })?.perVideo, a.names == b.names else { continue }
                    pairs.append((a[keyPath: outcome], b[keyPath: outcome]))
                }
                guard let d = pairedDifference(pairs, resamples: resamples) else { continue }
                out.append(PairedDifference(variant: v.name, metric: metric.rawValue, mean: d.mean, low: d.low, high: d.high,
                                            seeds: pairs.count, videos: pairs[0].variant.count))
            }
        }
        return out
    }

    /// The mean over seeds and videos of (variant's outcome - baseline's) per (seed, video), and
    /// the 2.5th and 97.5th percentiles of that mean over `resamples` draws of seeds and of videos
    /// with replacement (one draw of videos for both, so each video is compared with itself).
    /// Seeded: the same outcomes give the same interval. Nil without a seed or a video.
    public static func pairedDifference(_ pairs: [(variant: [Bool], baseline: [Bool])], resamples: Int = 2000)
        -> (mean: Double, low: Double, high: Double)? {
        guard let videos = pairs.first?.variant.count, videos > 0, pairs.allSatisfy({ $0.variant.count == videos && $0.baseline.count == videos }) else {
            return nil
        }
        let differences = pairs.map { p in (0..<videos).map { Double((p.variant[$0] ? 1 : 0) - (p.baseline[$0] ? 1 : 0)) } }
        let mean = differences.joined().reduce(0, +) / Double(pairs.count * videos)
        var rng = RandomGenerator(seed: 20_261_206)
        var means: [Double] = []
        for _ in 0..<resamples {
            let seeds = (0..<pairs.count).map { _ in Int(rng.next() % UInt64(pairs.count)) }
            let picked = (0..<videos).map { _ in Int(rng.next() % UInt64(videos)) }
            var total = 0.0
            for s in seeds { for v in picked { total += differences[s][v] } }
            means.append(total / Double(seeds.count * picked.count))
        }
        means.sort()
        func percentile(_ p: Double) -> Double { means[min(means.count - 1, max(0, Int((p * Double(means.count - 1)).rounded())))] }
        return (mean, percentile(0.025), percentile(0.975))
    }

    /// A paired difference in points: "+3.1 [-1.0, +7.3]".
    static func text(_ d: PairedDifference) -> String {
        String(format: "%+.1f [%+.1f, %+.1f]", 100 * d.mean, 100 * d.low, 100 * d.high)
    }

    /// The table of paired differences against the baseline (empty without one).
    static func pairedTable(_ sweep: Sweep, _ paired: [PairedDifference]) -> (caption: String, header: [String], rows: [[String]])? {
        guard let baseline = sweep.baseline, !paired.isEmpty else { return nil }
        let metrics = [Sweep.Metric.probeTop1, .knnTop1].filter { m in paired.contains { $0.metric == m.rawValue } }
        let rows = sweep.variants.filter { $0.name != baseline }.compactMap { v -> [String]? in
            let cells = metrics.map { m in paired.first { $0.variant == v.name && $0.metric == m.rawValue }.map(text) ?? "-" }
            guard cells.contains(where: { $0 != "-" }) else { return nil }
            let n = paired.first { $0.variant == v.name }
            return [v.name] + cells + [n.map { "\($0.seeds) x \($0.videos)" } ?? "-"]
        }
        let caption = "Against the baseline (\(baseline)): the paired difference in points (variant - baseline, per seed and test video), and its 95 % interval, resampling seeds and test videos (paired by video). An interval that excludes 0 is a difference these seeds and videos support."
        return (caption, ["variant"] + metrics.map { "\($0.title) change" } + ["seeds x videos"], rows)
    }

    /// Writes every report; returns how many runs are complete, failed and pending.
    @discardableResult
    public static func write(_ sweep: Sweep) throws -> (complete: Int, failed: Int, pending: Int) {
        let fm = FileManager.default
        try fm.createDirectory(at: sweep.output, withIntermediateDirectories: true)
        let records = gather(sweep)
        let floorReports = floor(sweep)
        let floorRow = floorSummary(sweep, floorReports)
        let summaries = summarize(sweep, records)
        let differences = paired(sweep, records)
        try writeAtomically(Data(csv(sweep, records).utf8), to: sweep.output.appendingPathComponent("results.csv"))
        struct Document: Codable {
            var sweep: String, file: String, metrics: [String], runs: [RunRecord], variants: [VariantSummary]
            var floor: VariantSummary?, baseline: String?, paired: [PairedDifference]
        }
        let doc = Document(sweep: sweep.name, file: sweep.file, metrics: sweep.metrics.map(\.rawValue), runs: records, variants: summaries,
                           floor: floorRow, baseline: sweep.baseline, paired: differences)
        try writeAtomically(try JSONEncoder.sorted.encode(doc), to: sweep.output.appendingPathComponent("results.json"))
        try writeAtomically(Data(markdown(sweep, records, summaries, floor: floorRow, paired: differences).utf8),
                            to: sweep.output.appendingPathComponent("results.md"))
        let plots = try writePlots(sweep, records, floor: floorRow, summaries: summaries)
        try writeAtomically(Data(html(sweep, records, summaries, floor: floorRow, paired: differences, plots: plots).utf8),
                            to: sweep.output.appendingPathComponent("report.html"))
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
    /// With `floor`, its row comes first (never bold: it is not a variant).
    static func rows(_ sweep: Sweep, _ summaries: [VariantSummary], floor: VariantSummary? = nil) -> (header: [String], rows: [[(text: String, bold: Bool)]]) {
        let header = ["variant", "seeds"] + sweep.metrics.map(\.title) + sweep.variedKeys
        let bests = sweep.metrics.map { best(summaries, $0) }
        var rows: [[(text: String, bold: Bool)]] = []
        if let f = floor {
            rows.append([(f.variant, false), ("\(f.seedsComplete)/\(sweep.seeds.count)", false)] + sweep.metrics.map { (cell(f, $0) ?? "-", false) }
                        + sweep.variedKeys.map { _ in ("-", false) })
        }
        rows += summaries.map { s -> [(text: String, bold: Bool)] in
            var row: [(text: String, bold: Bool)] = [(s.variant + (s.variant == sweep.baseline ? " (baseline)" : ""), false),
                                                     ("\(s.seedsComplete)/\(sweep.seeds.count)", false)]
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

    static func markdown(_ sweep: Sweep, _ records: [RunRecord], _ summaries: [VariantSummary], floor: VariantSummary? = nil,
                         paired: [PairedDifference] = []) -> String {
        let (header, rows) = rows(sweep, summaries, floor: floor)
        var out = "# \(sweep.name)\n\n`\(sweep.file)`: \(caption(sweep, records))\n\n"
        out += "| " + header.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: header.count) + "\n"
        for row in rows { out += "| " + row.map { $0.bold ? "**\($0.text)**" : $0.text }.joined(separator: " | ") + " |\n" }
        if let table = pairedTable(sweep, paired) {
            out += "\n\(table.caption)\n\n| " + table.header.joined(separator: " | ") + " |\n|" + String(repeating: "---|", count: table.header.count) + "\n"
            for row in table.rows { out += "| " + row.joined(separator: " | ") + " |\n" }
        }
        let failed = records.filter { $0.status == "failed" }
        if !failed.isEmpty {
            out += "\nFailed runs:\n\n" + failed.map { "- `\($0.variant)/seed-\($0.seed)`: \($0.error ?? "")" }.joined(separator: "\n") + "\n"
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    static func html(_ sweep: Sweep, _ records: [RunRecord], _ summaries: [VariantSummary], floor: VariantSummary? = nil,
                     paired: [PairedDifference] = [], plots: [String]) -> String {
        let (header, rows) = rows(sweep, summaries, floor: floor)
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
        if let table = pairedTable(sweep, paired) {
            out += "<p>\(escape(table.caption))</p>\n<table><tr>" + table.header.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
            for row in table.rows { out += "<tr>" + row.map { "<td>\(escape($0))</td>" }.joined() + "</tr>\n" }
            out += "</table>\n"
        }
        let failed = records.filter { $0.status == "failed" }
        if !failed.isEmpty {
            out += "<h2>Failed runs</h2><ul class=\"failed\">" + failed.map { "<li><code>\(escape($0.variant))/seed-\($0.seed)</code>: \(escape($0.error ?? ""))</li>" }.joined() + "</ul>\n"
        }
        out += "<h2>Plots</h2>\n" + plots.map { "<img src=\"\($0)\" alt=\"\($0)\">" }.joined(separator: "\n") + "\n</body></html>\n"
        return out
    }

    /// A PNG per metric (each seed a dot) and one of every run's loss curve; returns their names.
    static func writePlots(_ sweep: Sweep, _ records: [RunRecord], floor: VariantSummary? = nil, summaries: [VariantSummary] = []) throws -> [String] {
        var names: [String] = []
        let categories = sweep.variants.map(\.name)
        for m in sweep.metrics {
            let values = categories.map { v in
                records.filter { $0.variant == v && $0.status == "complete" }.compactMap { $0.metrics[m.rawValue] }.map { m.isFraction ? 100 * $0 : $0 }
            }
            guard values.contains(where: { !$0.isEmpty }) else { continue }
            let name = "plot-\(m.rawValue).png"
            let scale = m.isFraction ? 100.0 : 1.0
            var references: [(label: String, value: Double)] = []
            if let f = floor?.mean[m.rawValue] { references.append(("random init", scale * f)) }
            if let b = sweep.baseline, let mean = summaries.first(where: { $0.variant == b })?.mean[m.rawValue] { references.append(("baseline", scale * mean)) }
            try Plot.dots(title: "\(sweep.name): \(m.title) per variant (each dot a seed)", yLabel: m.title, categories: categories,
                          values: values, references: references, to: sweep.output.appendingPathComponent(name))
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

import Foundation
import MeshTesting
import Testing

/// The `mesh-sim` executable: its report and how it sets up the allocator.
@Suite struct MeshSimCommandTests {
    /// A report of `mesh-sim` (one JSON object): its fields and its text.
    struct Report {
        let fields: [String: Any]
        let text: String

        /// The text without the fields about the run's time (`elapsed_seconds`, `malloc_huge_pages`).
        var outcome: String {
            text.replacing(#/"elapsed_seconds":[0-9.e-]+,/#, with: "")
                .replacing(#/"malloc_huge_pages":[a-z]+,/#, with: "")
        }
    }

    /// Runs `mesh-sim` on a small mesh.
    func report(
        _ extra: [String] = [], environment: [String: String?] = [:], mesh: [String] = ["--nodes", "4", "--writes", "20"]
    ) async throws -> Report {
        try await run(extra, environment: environment, mesh: mesh).report
    }

    func run(
        _ extra: [String] = [], environment: [String: String?] = [:], mesh: [String] = ["--nodes", "4", "--writes", "20"]
    ) async throws -> (report: Report, standardError: String) {
        let result = try await runToCompletion(
            try builtExecutable(named: "mesh-sim"), arguments: mesh + extra, environment: environment)
        #expect(result.status == 0, "\(result.standardError)")
        let object = try JSONSerialization.jsonObject(with: Data(result.standardOutput.utf8))
        return (Report(fields: try #require(object as? [String: Any]), text: result.standardOutput), result.standardError)
    }

    /// A long run reports its progress on stderr (phase, virtual time, writes, deliveries), stdout keeps the
    /// report alone, and the run is the same with progress lines or without; a sweep reports seeds done.
    @Test func progressLinesOnStandardError() async throws {
        let mesh = ["--nodes", "16", "--writes", "400"]
        let quiet = try await run(["--progress", "0"], mesh: mesh)
        #expect(quiet.standardError.isEmpty)
        // A microsecond between lines: every observation prints.
        let chatty = try await run(["--progress", "0.000001"], mesh: mesh)
        let lines = chatty.standardError.split(separator: "\n")
        #expect(lines.count >= 2, "\(chatty.standardError)")
        #expect(lines.allSatisfy { $0.hasPrefix("mesh-sim: ") && $0.contains("/400 writes") && $0.contains("deliveries") })
        #expect(lines.contains { $0.contains(" writing: virtual ") })
        #expect(chatty.report.outcome == quiet.report.outcome)

        let sweep = try await runToCompletion(
            try builtExecutable(named: "mesh-sim"), arguments: ["--sweep", "--seeds", "3", "--progress", "0.000001"])
        #expect(sweep.status == 0, "\(sweep.standardError)")
        #expect(sweep.standardError.contains("3/3 seeds (0 failed)"), "\(sweep.standardError)")
        #expect(sweep.standardOutput.contains("\"failed\":0"))
    }

    /// By default mesh-sim restarts itself with glibc's huge-page tunable; `--no-huge-pages` and a tunable
    /// the caller set (0 included) are respected; other tunables are kept. The outcome is the same each way.
    @Test func hugePagesAreRequestedUnlessTurnedOff() async throws {
        #if os(Linux)
        let unset: [String: String?] = ["GLIBC_TUNABLES": nil]
        let byDefault = try await report(environment: unset)
        #expect(byDefault.fields["malloc_huge_pages"] as? Bool == true)
        let turnedOff = try await report(["--no-huge-pages"], environment: unset)
        #expect(turnedOff.fields["malloc_huge_pages"] as? Bool == false)
        let callerSaysNo = try await report(environment: ["GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"])
        #expect(callerSaysNo.fields["malloc_huge_pages"] as? Bool == false)
        let otherTunable = try await report(environment: ["GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"])
        #expect(otherTunable.fields["malloc_huge_pages"] as? Bool == true)

        #expect(byDefault.fields["converged"] as? Bool == true)
        #expect(!byDefault.outcome.contains("elapsed_seconds"))
        #expect(byDefault.outcome == turnedOff.outcome)
        #expect(byDefault.outcome == callerSaysNo.outcome)
        #endif
    }
}

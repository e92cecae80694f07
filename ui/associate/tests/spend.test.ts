import { describe, expect, it } from "vitest";
import { spendSeries } from "../src/lib/spend";

describe("spendSeries", () => {
  it("orders months, keeps the top departments and folds the rest into Other", () => {
    const series = spendSeries(
      [
        { month: "2017-09", department: "GROCERY", cents: 1000 },
        { month: "2017-08", department: "GROCERY", cents: 500 },
        { month: "2017-08", department: "PRODUCE", cents: 300 },
        { month: "2017-09", department: "DELI", cents: 50 },
        { month: "2017-09", department: "MEAT", cents: 40 },
      ],
      2,
    );
    expect(series.months).toEqual(["2017-08", "2017-09"]);
    expect(series.departments.map((d) => d.name)).toEqual(["GROCERY", "PRODUCE", "Other"]);
    expect(series.departments[0].dollars).toEqual([5, 10]);
    expect(series.departments[2].dollars).toEqual([0, 0.9]);
  });

  it("is empty without spend", () => {
    expect(spendSeries([], 5)).toEqual({ months: [], departments: [] });
  });
});

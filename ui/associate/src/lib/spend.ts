import type { MonthSpend } from "../bindings";

export interface SpendSeries {
  months: string[];
  departments: { name: string; dollars: number[] }[];
}

/** Months in order; the `top` departments by total spend, the rest as "Other". */
export function spendSeries(spend: MonthSpend[], top: number): SpendSeries {
  const months = [...new Set(spend.map((s) => s.month))].sort();
  const totals = new Map<string, number>();
  for (const s of spend) totals.set(s.department, (totals.get(s.department) ?? 0) + s.cents);
  const kept = [...totals.entries()]
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, top)
    .map(([name]) => name);
  const names = totals.size > kept.length ? [...kept, "Other"] : kept;
  const departments = names.map((name) => ({ name, dollars: months.map(() => 0) }));
  for (const s of spend) {
    const name = kept.includes(s.department) ? s.department : "Other";
    const row = departments.find((d) => d.name === name)!;
    row.dollars[months.indexOf(s.month)] += s.cents / 100;
  }
  return { months, departments };
}

import { describe, expect, it } from 'vitest';
import { budgetVerdict, IDLE_CPU_BUDGET_PERCENT, IDLE_RSS_BUDGET_MIB } from '../../../bench/scenarios/resources.js';

describe('the resources scenario against its budgets', () => {
  it("states issue 23's budgets: 80 MiB of idle RSS, 1 % of a core of idle CPU", () => {
    expect([IDLE_RSS_BUDGET_MIB, IDLE_CPU_BUDGET_PERCENT]).toEqual([80, 1]);
  });

  it.each([
    { value: 75.25, verdict: 'within the budget of ≤ 80 MiB' },
    { value: 80, verdict: 'within the budget of ≤ 80 MiB' },
    { value: 83.44, verdict: 'OVER the budget of ≤ 80 MiB by 3.4 MiB' },
    { value: NaN, verdict: 'not measured' },
  ])('$value MiB: $verdict', ({ value, verdict }) => {
    expect(budgetVerdict(value, 80, 'MiB')).toBe(verdict);
  });
});

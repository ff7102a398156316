// Autoscaler settings for tests that run the sidecar as a process and want the replica count to
// be the test's to set (through the minimum and maximum): an evaluation every second, no
// stabilisation window, no forecast, and thresholds the test's own load never reaches.
export const LOAD_BLIND_AUTOSCALER: Readonly<Record<string, string>> = {
  HSC_AUTOSCALE_INTERVAL_MS: '1000',
  HSC_AUTOSCALE_DOWN_WINDOW_MS: '0',
  HSC_AUTOSCALE_FORECAST: 'off',
  HSC_AUTOSCALE_RPS_TARGET: '1000000',
  HSC_AUTOSCALE_RPS_DOWN: '1000000',
  HSC_AUTOSCALE_QUEUE_TARGET: '1000',
  HSC_AUTOSCALE_QUEUE_DOWN: '1000',
  HSC_AUTOSCALE_RT_TARGET: '60',
  HSC_AUTOSCALE_RT_DOWN: '60',
  HSC_AUTOSCALE_STOP_TIMEOUT_S: '10',
};

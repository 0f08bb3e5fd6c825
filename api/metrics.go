package api

// Azure Monitor's metrics answer (GET {resourceId}/providers/Microsoft.Insights/metrics),
// as the server writes it and the virtual node and the CLI read it.

// MetricsResponse is Azure Monitor's "Response".
type MetricsResponse struct {
	Cost           int      `json:"cost"`
	Timespan       string   `json:"timespan"`
	Interval       string   `json:"interval"`
	Namespace      string   `json:"namespace"`
	ResourceRegion string   `json:"resourceregion"`
	Value          []Metric `json:"value"`
}

// LocalizableString is a name with its display form.
type LocalizableString struct {
	Value          string `json:"value"`
	LocalizedValue string `json:"localizedValue,omitempty"`
}

// Metric is one metric and its time series.
type Metric struct {
	ID                 string            `json:"id"`
	Type               string            `json:"type"`
	Name               LocalizableString `json:"name"`
	DisplayDescription string            `json:"displayDescription"`
	Unit               string            `json:"unit"`
	Timeseries         []TimeSeries      `json:"timeseries"`
	ErrorCode          string            `json:"errorCode"`
}

// TimeSeries is one series, with the dimension values that pick it.
type TimeSeries struct {
	Metadatavalues []MetadataValue `json:"metadatavalues"`
	Data           []MetricPoint   `json:"data"`
}

// MetadataValue is a dimension value, e.g. containername.
type MetadataValue struct {
	Name  LocalizableString `json:"name"`
	Value string            `json:"value"`
}

// MetricPoint is one data point, with the aggregations asked for.
type MetricPoint struct {
	TimeStamp string   `json:"timeStamp"`
	Average   *float64 `json:"average,omitempty"`
	Minimum   *float64 `json:"minimum,omitempty"`
	Maximum   *float64 `json:"maximum,omitempty"`
	Total     *float64 `json:"total,omitempty"`
	Count     *float64 `json:"count,omitempty"`
}

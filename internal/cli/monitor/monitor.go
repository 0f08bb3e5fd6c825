// Package monitor is `skiff monitor metrics list`, the grammar of `az
// monitor metrics list`, on the server's Azure Monitor metrics route of a
// container group (docs/api.md, "Metrics").
package monitor

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/skiff-sh/skiff/api"
	"github.com/skiff-sh/skiff/client"
	"github.com/skiff-sh/skiff/internal/cli/cmdutil"
	"github.com/skiff-sh/skiff/internal/cli/output"
)

// NewCmd returns `skiff monitor`.
func NewCmd(f *cmdutil.Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "monitor",
		Short: "Read the metrics of container groups (as az monitor)",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	f.AddGlobalFlags(cmd)
	metrics := &cobra.Command{
		Use:   "metrics",
		Short: "Metrics of a resource",
		Args:  cobra.ArbitraryArgs,
		RunE:  cmdutil.GroupRunE,
	}
	metrics.AddCommand(newListCmd(f))
	cmd.AddCommand(metrics)
	return cmd
}

type listOptions struct {
	resource, resourceGroup, resourceType string
	metrics, aggregation, dimension       []string
	interval, filter                      string
}

func newListCmd(f *cmdutil.Factory) *cobra.Command {
	var o listOptions
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the metric values of a container group",
		Long: `List the metric values of a container group: CpuUsage (millicores), MemoryUsage (bytes), and the
Skiff extensions CpuUsageTotal (cumulative CPU seconds) and MemoryCgroupUsage (bytes, page cache included).

  skiff monitor metrics list --resource /subscriptions/S/resourceGroups/RG/providers/Microsoft.ContainerInstance/containerGroups/NAME --metric CpuUsage
  skiff monitor metrics list -g RG --resource NAME --metrics CpuUsage MemoryUsage --dimension containerName`,
		Args: cmdutil.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, q, err := o.request()
			if err != nil {
				return err
			}
			c, err := f.Client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			ctx := client.WithRawJSON(cmd.Context(), &raw)
			if strings.HasPrefix(path, "/") {
				_, err = c.MetricsOf(ctx, path, q)
			} else {
				_, err = c.Metrics(ctx, o.resourceGroup, path, q)
			}
			if err != nil {
				return err
			}
			var v map[string]any
			if err := (&client.Response{Body: raw}).Decode(&v); err != nil {
				return err
			}
			if f.Output.Format == output.Table && f.Output.Query == "" {
				return f.Print(tableRows(v), nil)
			}
			return f.Print(v, nil)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.resource, "resource", "", "container group: its resource ID, or its name with --resource-group")
	fl.StringVarP(&o.resourceGroup, "resource-group", "g", "", "resource group of --resource when it is a name")
	fl.StringVar(&o.resourceType, "resource-type", api.ResourceType, "resource type of --resource when it is a name")
	fl.StringSliceVar(&o.metrics, "metrics", nil, "space-separated metric names (default CpuUsage)")
	fl.StringSliceVar(&o.metrics, "metric", nil, "same as --metrics")
	fl.StringSliceVar(&o.aggregation, "aggregation", nil, "Average, Minimum, Maximum, Total or Count (default Average)")
	fl.StringSliceVar(&o.dimension, "dimension", nil, "split by these dimensions (containerName)")
	fl.StringVar(&o.interval, "interval", "1m", "interval of the data points, e.g. 1m or PT1M")
	fl.StringVar(&o.filter, "filter", "", "OData filter, e.g. \"containerName eq '*'\"")
	cmdutil.Nargs(cmd, "metrics", "metric", "aggregation", "dimension")
	_ = cmd.MarkFlagRequired("resource")
	return cmd
}

// request returns the resource (an ID, or a bare name to complete with the
// subscription's paths) and the query.
func (o *listOptions) request() (string, url.Values, error) {
	res := strings.TrimRight(o.resource, "/")
	if !strings.HasPrefix(res, "/") {
		if o.resourceGroup == "" {
			return "", nil, cmdutil.FlagErrorf("--resource %q is not a resource ID: give one, or pass --resource-group", o.resource)
		}
		if !strings.EqualFold(o.resourceType, api.ResourceType) {
			return "", nil, cmdutil.FlagErrorf("--resource-type %q: only %s has metrics here", o.resourceType, api.ResourceType)
		}
	}
	q := url.Values{"api-version": {"2018-01-01"}}
	if len(o.metrics) > 0 {
		q.Set("metricnames", strings.Join(o.metrics, ","))
	}
	if len(o.aggregation) > 0 {
		q.Set("aggregation", strings.Join(o.aggregation, ","))
	}
	q.Set("interval", isoInterval(o.interval))
	filter := o.filter
	for _, d := range o.dimension {
		clause := fmt.Sprintf("%s eq '*'", d)
		if filter == "" {
			filter = clause
		} else {
			filter += " and " + clause
		}
	}
	if filter != "" {
		q.Set("$filter", filter)
	}
	return res, q, nil
}

// isoInterval turns az's "1m"/"1h" into ISO 8601 ("PT1M"); anything else
// is passed on.
func isoInterval(s string) string {
	u := strings.ToUpper(strings.TrimSpace(s))
	if strings.HasPrefix(u, "P") || u == "" {
		return u
	}
	if strings.HasSuffix(u, "D") {
		return "P" + u
	}
	return "PT" + u
}

// tableRows flattens the answer into one row per data point, as az's table
// output of metrics list does.
func tableRows(v map[string]any) []map[string]any {
	rows := []map[string]any{}
	values, _ := v["value"].([]any)
	for _, mv := range values {
		m, _ := mv.(map[string]any)
		name, _ := output.Field(m, "name", "localizedValue").(string)
		series, _ := m["timeseries"].([]any)
		for _, s := range series {
			ts, _ := s.(map[string]any)
			container := ""
			mds, _ := ts["metadatavalues"].([]any)
			for _, md := range mds {
				if val, ok := output.Field(md, "value").(string); ok {
					container = val
				}
			}
			data, _ := ts["data"].([]any)
			for _, d := range data {
				dp, _ := d.(map[string]any)
				row := map[string]any{"Timestamp": dp["timeStamp"], "Name": name}
				if container != "" {
					row["Container"] = container
				}
				var aggs []string
				for k := range dp {
					if k != "timeStamp" {
						aggs = append(aggs, k)
					}
				}
				sort.Strings(aggs)
				for _, k := range aggs {
					row[strings.ToUpper(k[:1])+k[1:]] = dp[k]
				}
				rows = append(rows, row)
			}
		}
	}
	return rows
}

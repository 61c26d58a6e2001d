// 科普统计: draws the statistics page's charts with Apache ECharts (static/vendor/echarts.min.js)
// from the JSON in <script type="application/json" id="stats-data">. No inline script (CSP);
// tooltips render on the canvas (renderMode "richText"), so no HTML with style attributes is made.
(function () {
  "use strict";
  var charts = [];

  function make(id, option) {
    var el = document.getElementById(id);
    if (!el || !window.echarts) return null;
    var chart = window.echarts.init(el, null, { renderer: "canvas" });
    option.animation = false;
    option.tooltip = Object.assign({ trigger: "axis", renderMode: "richText", confine: true }, option.tooltip || {});
    chart.setOption(option);
    charts.push(chart);
    return chart;
  }

  function stacked(id, days, series) {
    return make(id, {
      legend: { type: "scroll", top: 0 },
      grid: { left: 40, right: 16, top: 40, bottom: 40 },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", minInterval: 1 },
      series: series.map(function (s) {
        return { name: s.name, type: "bar", stack: "total", emphasis: { focus: "series" }, data: s.counts };
      })
    });
  }

  function draw(data) {
    var pd = data.per_day;
    stacked("chart-topics", pd.days, pd.by_topic);
    stacked("chart-labels", pd.days, pd.by_label);
    make("chart-flagged", {
      legend: { top: 0 },
      grid: { left: 48, right: 48, top: 40, bottom: 40 },
      xAxis: { type: "category", data: pd.days },
      yAxis: [
        { type: "value", name: "条", minInterval: 1 },
        { type: "value", name: "标记率 %", min: 0, max: 100 }
      ],
      series: [
        { name: "新增", type: "bar", data: pd.totals },
        { name: "被标记", type: "bar", data: pd.flagged },
        { name: "标记率", type: "line", yAxisIndex: 1, connectNulls: false,
          data: pd.flagged_rate.map(function (r) { return r === null ? null : Math.round(r * 1000) / 10; }) }
      ]
    });
    var clusters = data.clusters.slice().reverse();
    make("chart-clusters", {
      legend: { top: 0 },
      grid: { left: 160, right: 24, top: 40, bottom: 24 },
      xAxis: { type: "value", minInterval: 1 },
      yAxis: { type: "category", data: clusters.map(function (c) {
        return c.text.length > 12 ? c.text.slice(0, 12) + "…" : c.text;
      }) },
      series: [
        { name: "本周", type: "bar", data: clusters.map(function (c) { return c.recent; }) },
        { name: "上周", type: "bar", data: clusters.map(function (c) { return c.previous; }) }
      ]
    });
    var weeks = data.review_time.weeks;
    make("chart-review-time", {
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 40, bottom: 40 },
      xAxis: { type: "category", data: weeks.map(function (w) { return w.week; }) },
      yAxis: { type: "value", name: "小时" },
      series: [
        { name: "中位数", type: "bar", data: weeks.map(function (w) { return w.median_hours; }) },
        { name: "P90", type: "line", data: weeks.map(function (w) { return w.p90_hours; }) }
      ]
    });
    var sources = data.sources;
    make("chart-sources", {
      legend: { top: 0 },
      grid: { left: 48, right: 16, top: 40, bottom: 60 },
      xAxis: { type: "category", data: sources.map(function (s) { return s.source; }), axisLabel: { rotate: 30 } },
      yAxis: { type: "value", minInterval: 1 },
      series: ["claims", "flagged", "confirmed", "dismissed"].map(function (key, i) {
        return { name: ["说法", "被标记", "确认为谣言", "已排除"][i], type: "bar",
                 data: sources.map(function (s) { return s[key]; }) };
      })
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var node = document.getElementById("stats-data");
    if (!node) return;
    var data;
    try { data = JSON.parse(node.textContent); } catch (e) { return; }
    draw(data);
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  });
})();

//! `--plot out.svg`: latency percentiles over time (left) and the latency CDF on a "nines"
//! axis (right), drawn with plotters' SVG backend.

use plotters::prelude::*;

use crate::error::LoadTestError;
use crate::report::Report;
use crate::stats::TimelinePoint;

const SIZE: (u32, u32) = (1200, 480);

/// Writes the plot of `report` to `path`.
pub fn write_svg(report: &Report, path: &str) -> Result<(), LoadTestError> {
    draw(report, path).map_err(|e| LoadTestError::Output {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;
/// Picks one percentile out of a timeline point.
type Percentile = fn(&TimelinePoint) -> f64;

fn draw(report: &Report, path: &str) -> DrawResult {
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    draw_timeline(report, &left)?;
    draw_cdf(report, &right)?;
    root.present()?;
    Ok(())
}

fn draw_timeline(
    report: &Report,
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
) -> DrawResult {
    let points = &report.timeline;
    let max_x = points.last().map_or(1, |p| p.second + 1) as f64;
    let max_y = points.iter().map(|p| p.p999_ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency over time", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("second of the measured window")
        .y_desc("ms")
        .draw()?;
    let series: [(&str, Percentile, RGBColor); 4] = [
        ("p50", |p| p.p50_ms, BLUE),
        ("p90", |p| p.p90_ms, GREEN),
        ("p99", |p| p.p99_ms, RGBColor(230, 140, 0)),
        ("p99.9", |p| p.p999_ms, RED),
    ];
    for (name, value, color) in series {
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.second as f64 + 0.5, value(p))),
                color,
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()?;
    Ok(())
}

/// Distance in "nines" of a quantile: 0.9 → 1, 0.99 → 2.
fn nines(quantile: f64) -> f64 {
    -(1.0 - quantile).max(1e-9).log10()
}

/// "99.9%" for 3 nines, without float noise.
fn percent_label(nines: f64) -> String {
    let percent = format!("{:.4}", 100.0 * (1.0 - 10f64.powf(-nines)));
    let trimmed = percent.trim_end_matches('0').trim_end_matches('.');
    format!("{trimmed}%")
}

fn draw_cdf(report: &Report, area: &DrawingArea<SVGBackend, plotters::coord::Shift>) -> DrawResult {
    let points = &report.cdf;
    let max_x = points
        .iter()
        .map(|p| nines(p.quantile))
        .fold(1.0, f64::max)
        .ceil();
    let max_y = points.iter().map(|p| p.ms).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption("latency CDF", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_x, 0f64..max_y)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("ms")
        .x_labels(max_x as usize + 1)
        .x_label_formatter(&|x| percent_label(*x))
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().map(|p| (nines(p.quantile), p.ms)),
        BLUE,
    ))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn percent_labels() {
        assert_eq!(super::percent_label(0.0), "0%");
        assert_eq!(super::percent_label(1.0), "90%");
        assert_eq!(super::percent_label(3.0), "99.9%");
        assert_eq!(super::percent_label(4.0), "99.99%");
    }
}

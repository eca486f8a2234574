//! Pictures of results: the timbre space projected to its first two principal components,
//! coloured by instrument family and labelled by instrument (PNG, plotters).

use std::collections::BTreeMap;
use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// A font that Debian ships in `fonts-dejavu-core`.
pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// No usable font for the labels.
    #[error(
        "cannot load the label font {FONT_PATH} (Debian: apt-get install fonts-dejavu-core): {0}"
    )]
    Font(String),
    /// Fewer than two points or dimensions.
    #[error("need at least two points of at least two dimensions to project")]
    TooFew,
    /// Drawing or encoding failed.
    #[error("drawing {path}: {detail}")]
    Draw {
        /// The PNG.
        path: String,
        /// What the backend said.
        detail: String,
    },
}

/// Points projected onto two principal axes.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    /// `(PC 1, PC 2)` coordinates of every point.
    pub coords: Vec<(f64, f64)>,
    /// Share of the total variance each axis explains, 0..=1.
    pub explained: [f64; 2],
    /// Mean of the points (`dim` values), subtracted before projecting.
    pub mean: Vec<f64>,
    /// The two unit principal axes (`dim` values each).
    pub axes: [Vec<f64>; 2],
}

/// First two principal axes of `points` (row-major, `n x dim`).
pub fn pca_2d(points: &[f32], dim: usize) -> Result<Projection, PlotError> {
    let n = points.len().checked_div(dim).unwrap_or(0);
    if n < 2 || dim < 2 {
        return Err(PlotError::TooFew);
    }
    let mut mean = vec![0.0f64; dim];
    for row in points.chunks_exact(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += *v as f64 / n as f64;
        }
    }
    let mut cov = vec![0.0f64; dim * dim];
    for row in points.chunks_exact(dim) {
        for i in 0..dim {
            let a = row[i] as f64 - mean[i];
            for j in i..dim {
                cov[i * dim + j] += a * (row[j] as f64 - mean[j]) / (n - 1) as f64;
            }
        }
    }
    for i in 0..dim {
        for j in 0..i {
            cov[i * dim + j] = cov[j * dim + i];
        }
    }
    let total: f64 = (0..dim).map(|i| cov[i * dim + i]).sum();
    // Power iteration with deflation for the two leading eigenvectors.
    let mut axes: Vec<Vec<f64>> = Vec::new();
    let mut explained = [0.0; 2];
    for (k, share) in explained.iter_mut().enumerate() {
        let mut v: Vec<f64> = (0..dim)
            .map(|i| 1.0 + ((i * 7 + k * 3) % 11) as f64 / 10.0)
            .collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w = vec![0.0f64; dim];
            for i in 0..dim {
                w[i] = (0..dim).map(|j| cov[i * dim + j] * v[j]).sum();
            }
            for a in &axes {
                let d: f64 = w.iter().zip(a).map(|(x, y)| x * y).sum();
                for (x, y) in w.iter_mut().zip(a) {
                    *x -= d * y;
                }
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm < 1e-30 {
                break;
            }
            lambda = norm;
            v = w.into_iter().map(|x| x / norm).collect();
        }
        *share = if total > 0.0 { lambda / total } else { 0.0 };
        axes.push(v);
    }
    let coords = points
        .chunks_exact(dim)
        .map(|row| {
            let proj = |a: &[f64]| -> f64 {
                row.iter()
                    .zip(&mean)
                    .zip(a)
                    .map(|((x, m), w)| (*x as f64 - m) * w)
                    .sum()
            };
            (proj(&axes[0]), proj(&axes[1]))
        })
        .collect();
    let second = axes.pop().unwrap_or_default();
    let first = axes.pop().unwrap_or_default();
    Ok(Projection {
        coords,
        explained,
        mean,
        axes: [first, second],
    })
}

/// Registers [`FONT_PATH`] as plotters' "sans-serif" (once per process).
fn register_label_font() -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            let font = std::fs::read(FONT_PATH).map_err(|e| e.to_string())?;
            let font: &'static [u8] = Box::leak(font.into_boxed_slice());
            register_font("sans-serif", FontStyle::Normal, font)
                .map_err(|_| "not a usable TrueType font".to_string())
        })
        .clone()
        .map_err(PlotError::Font)
}

/// One named curve of a line chart: `(x, y)` points.
pub type Series = (String, Vec<(f64, f64)>);

/// Draws `series` as lines into a PNG of `size` pixels; with `log_y` the y axis is
/// logarithmic (non-positive values are skipped).
pub fn lines_png(
    path: &Path,
    title: &str,
    x_desc: &str,
    series: &[Series],
    log_y: bool,
    size: (u32, u32),
) -> Result<(), PlotError> {
    register_label_font()?;
    let draw_err = |e: String| PlotError::Draw {
        path: path.display().to_string(),
        detail: e,
    };
    let usable = |y: f64| y.is_finite() && (!log_y || y > 0.0);
    let points = series
        .iter()
        .flat_map(|(_, p)| p.iter())
        .filter(|(_, y)| usable(*y));
    let (xmin, xmax, ymin, ymax) = points.fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), (x, y)| (a.min(*x), b.max(*x), c.min(*y), d.max(*y)),
    );
    if xmin > xmax {
        return Err(PlotError::TooFew);
    }
    let xmax = if xmax > xmin { xmax } else { xmin + 1.0 };
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(x_desc)
                .draw()
                .map_err(|e| draw_err(e.to_string()))?;
            for (i, (name, pts)) in series.iter().enumerate() {
                let colour = Palette99::pick(i).to_rgba();
                chart
                    .draw_series(LineSeries::new(
                        pts.iter().copied().filter(|(_, y)| usable(*y)),
                        colour.stroke_width(2),
                    ))
                    .map_err(|e| draw_err(e.to_string()))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], colour));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(|e| draw_err(e.to_string()))?;
        }};
    }
    if log_y {
        let ymax = if ymax > ymin { ymax } else { ymin * 10.0 };
        draw!(ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(xmin..xmax, (ymin..ymax).log_scale())
            .map_err(|e| draw_err(e.to_string()))?);
    } else {
        let pad = (ymax - ymin).max(1e-9) * 0.05;
        draw!(ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(xmin..xmax, (ymin - pad)..(ymax + pad))
            .map_err(|e| draw_err(e.to_string()))?);
    }
    root.present().map_err(|e| draw_err(e.to_string()))
}

/// One labelled group of points (an instrument).
#[derive(Debug, Clone)]
pub struct Group {
    /// Instrument name (label at the group's centroid).
    pub name: String,
    /// Family (colour).
    pub family: String,
    /// Indices into the projected points.
    pub members: Vec<usize>,
}

/// Draws the 2-D projection of `points` with one colour per family and each group's name at
/// its centroid, into a PNG of `size` pixels.
pub fn scatter_png(
    path: &Path,
    title: &str,
    points: &[f32],
    dim: usize,
    groups: &[Group],
    size: (u32, u32),
) -> Result<[f64; 2], PlotError> {
    register_label_font()?;
    let Projection {
        coords, explained, ..
    } = pca_2d(points, dim)?;
    let draw_err = |e: String| PlotError::Draw {
        path: path.display().to_string(),
        detail: e,
    };
    let (xmin, xmax, ymin, ymax) = coords.iter().fold(
        (f64::MAX, f64::MIN, f64::MAX, f64::MIN),
        |(a, b, c, d), (x, y)| (a.min(*x), b.max(*x), c.min(*y), d.max(*y)),
    );
    let pad = |lo: f64, hi: f64| (hi - lo).max(1e-9) * 0.05;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(
            (xmin - pad(xmin, xmax))..(xmax + pad(xmin, xmax)),
            (ymin - pad(ymin, ymax))..(ymax + pad(ymin, ymax)),
        )
        .map_err(|e| draw_err(e.to_string()))?;
    chart
        .configure_mesh()
        .x_desc(format!("PC 1 ({:.0} % of variance)", explained[0] * 100.0))
        .y_desc(format!("PC 2 ({:.0} % of variance)", explained[1] * 100.0))
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    let families: BTreeMap<&str, usize> = groups
        .iter()
        .map(|g| g.family.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .enumerate()
        .map(|(i, f)| (f, i))
        .collect();
    for (family, index) in &families {
        let colour = Palette99::pick(*index).to_rgba();
        let pts: Vec<(f64, f64)> = groups
            .iter()
            .filter(|g| g.family == *family)
            .flat_map(|g| g.members.iter().map(|m| coords[*m]))
            .collect();
        chart
            .draw_series(pts.iter().map(|p| Circle::new(*p, 3, colour.filled())))
            .map_err(|e| draw_err(e.to_string()))?
            .label(*family)
            .legend(move |(x, y)| Circle::new((x, y), 4, colour.filled()));
    }
    for g in groups.iter().filter(|g| !g.members.is_empty()) {
        let (sx, sy) = g
            .members
            .iter()
            .fold((0.0, 0.0), |(a, b), m| (a + coords[*m].0, b + coords[*m].1));
        let c = (sx / g.members.len() as f64, sy / g.members.len() as f64);
        chart
            .draw_series(std::iter::once(Text::new(
                g.name.clone(),
                c,
                ("sans-serif", 12).into_font().color(&BLACK),
            )))
            .map_err(|e| draw_err(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| draw_err(e.to_string()))?;
    root.present().map_err(|e| draw_err(e.to_string()))?;
    Ok(explained)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points on a tilted line plus small noise: PC 1 is the line and explains almost all.
    #[test]
    fn pca_finds_the_dominant_direction() {
        let mut points = Vec::new();
        for i in 0..100 {
            let t = i as f32 / 10.0 - 5.0;
            let noise = ((i * 37 % 11) as f32 - 5.0) * 0.01;
            points.extend_from_slice(&[3.0 * t + noise, t - noise, 2.0]);
        }
        let Projection {
            coords, explained, ..
        } = pca_2d(&points, 3).unwrap();
        assert!(explained[0] > 0.99, "{explained:?}");
        // Projection onto PC 1 is +-sqrt(10) * t.
        let scale = (coords[99].0 - coords[0].0).abs() / 9.9;
        assert!((scale - 10f64.sqrt()).abs() < 0.01, "{scale}");
    }
}

//! Pictures a person would rather see than read: grids of digits with captions, training
//! curves, confusion matrices. Everything renders to PNG with an embedded font (DejaVu Sans),
//! so output does not depend on the fonts a machine has.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// A failure to draw or write a picture, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: cannot write picture: {reason}")]
pub struct VizError {
    path: String,
    reason: String,
}

/// Draws with `paint` on a white `size` canvas held in memory, then writes it as PNG.
fn render(
    path: &Path,
    size: (u32, u32),
    paint: impl FnOnce(&Area) -> Result<(), String>,
) -> Result<(), VizError> {
    register_font();
    let e = err(path);
    let mut buffer = vec![255u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buffer, size).into_drawing_area();
        paint(&root).map_err(&e)?;
        root.present().map_err(|x| e(x.to_string()))?;
    }
    image::save_buffer(
        path,
        &buffer,
        size.0,
        size.1,
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|x| e(x.to_string()))
}

fn err(path: &Path) -> impl Fn(String) -> VizError + '_ {
    move |reason| VizError {
        path: path.display().to_string(),
        reason,
    }
}

const FONT: &str = "sans-serif";
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        let bytes: &'static [u8] = include_bytes!("../assets/DejaVuSans.ttf");
        // The font is embedded at compile time; failing to parse it is a build defect.
        if plotters::style::register_font(FONT, FontStyle::Normal, bytes).is_err() {
            panic!("embedded DejaVuSans.ttf does not parse");
        }
    });
}

/// A 28×28 grey digit (0 = background) and the caption printed under it.
pub struct Tile<'a> {
    /// 784 pixels, row-major.
    pub pixels: &'a [u8],
    /// Text under the digit, e.g. `7` or `true 4 → 9`.
    pub caption: String,
    /// Draw the caption in red (a mistake) rather than black.
    pub highlight: bool,
}

/// Draws `tiles` in a grid of `columns`, each digit scaled ×3, to a PNG at `path`.
pub fn digit_grid(
    tiles: &[Tile],
    columns: usize,
    title: &str,
    path: &Path,
) -> Result<(), VizError> {
    let columns = columns.clamp(1, tiles.len().max(1));
    let rows = tiles.len().div_ceil(columns).max(1);
    let (cell_w, cell_h, scale, top) = (96i32, 112i32, 3i32, 36i32);
    let size = (
        (columns as i32 * cell_w) as u32,
        (rows as i32 * cell_h + top) as u32,
    );
    render(path, size, |root| {
        let s = |x: DrawingAreaErrorKind<_>| x.to_string();
        root.draw_text(title, &(FONT, 18).into_font().color(&BLACK), (8, 8))
            .map_err(s)?;
        for (n, tile) in tiles.iter().enumerate() {
            let (col, row) = ((n % columns) as i32, (n / columns) as i32);
            let x0 = col * cell_w + (cell_w - 28 * scale) / 2;
            let y0 = row * cell_h + top;
            for (i, &p) in tile.pixels.iter().enumerate().take(28 * 28) {
                let ink = 255 - p;
                let (px, py) = (x0 + (i % 28) as i32 * scale, y0 + (i / 28) as i32 * scale);
                let rect = Rectangle::new(
                    [(px, py), (px + scale, py + scale)],
                    RGBColor(ink, ink, ink).filled(),
                );
                root.draw(&rect).map_err(s)?;
            }
            let color = if tile.highlight { RED } else { BLACK };
            let style = (FONT, 13).into_font().color(&color);
            root.draw_text(
                &tile.caption,
                &style,
                (col * cell_w + 6, y0 + 28 * scale + 4),
            )
            .map_err(s)?;
        }
        Ok(())
    })
}

/// One named curve over epochs.
pub struct Series<'a> {
    /// Legend label.
    pub label: &'a str,
    /// Values at epochs 1, 2, ...
    pub values: &'a [f64],
}

/// Training curves: loss on the left, accuracies (in %) on the right, to a PNG at `path`.
pub fn training_curves(loss: &[Series], accuracy: &[Series], path: &Path) -> Result<(), VizError> {
    render(path, (1000, 420), |root| {
        let (left, right) = root.split_horizontally(500);
        panel(&left, "loss", loss, false)?;
        panel(&right, "accuracy (%)", accuracy, true)
    })
}

fn panel(area: &Area, title: &str, series: &[Series], percent: bool) -> Result<(), String> {
    let scale = if percent { 100.0 } else { 1.0 };
    let all = || {
        series
            .iter()
            .flat_map(|s| s.values.iter().map(|v| v * scale))
    };
    let epochs = series
        .iter()
        .map(|s| s.values.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let (lo, hi) = all().fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi { (0.0, 1.0) } else { (lo, hi) };
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 18))
        .margin(12)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(1f64..epochs.max(2) as f64, (lo - pad)..(hi + pad))
        .map_err(|x| x.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .label_style((FONT, 12))
        .draw()
        .map_err(|x| x.to_string())?;
    const COLORS: [RGBColor; 4] = [BLUE, RED, GREEN, MAGENTA];
    for (s, &color) in series.iter().zip(COLORS.iter().cycle()) {
        let points = s
            .values
            .iter()
            .enumerate()
            .map(|(i, v)| ((i + 1) as f64, v * scale));
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|x| x.to_string())?
            .label(s.label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart
            .draw_series(points.map(|p| Circle::new(p, 3, color.filled())))
            .map_err(|x| x.to_string())?;
    }
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|x| x.to_string())
}

/// A 10×10 confusion matrix (`counts[true][predicted]`) as a heat map with counts, to `path`.
pub fn confusion_matrix(
    counts: &[[u32; 10]; 10],
    title: &str,
    path: &Path,
) -> Result<(), VizError> {
    let (cell, left, top) = (48i32, 70i32, 70i32);
    let size = (
        (left + 10 * cell + 20) as u32,
        (top + 10 * cell + 20) as u32,
    );
    render(path, size, |root| {
        let s = |x: DrawingAreaErrorKind<_>| x.to_string();
        let text = |t: &str, pos: (i32, i32), size: u32, color: &RGBColor| {
            root.draw_text(t, &(FONT, size).into_font().color(color), pos)
                .map_err(s)
        };
        text(title, (8, 8), 18, &BLACK)?;
        text("predicted →", (left, top - 40), 14, &BLACK)?;
        text("true ↓", (4, top - 20), 14, &BLACK)?;
        for (t, row) in counts.iter().enumerate() {
            let row_total = row.iter().sum::<u32>().max(1);
            text(
                &t.to_string(),
                (left - 20, top + t as i32 * cell + cell / 2 - 7),
                14,
                &BLACK,
            )?;
            text(
                &t.to_string(),
                (left + t as i32 * cell + cell / 2 - 4, top - 20),
                14,
                &BLACK,
            )?;
            for (p, &n) in row.iter().enumerate() {
                let share = n as f64 / row_total as f64;
                let shade = |full: u8| (255.0 - share.sqrt() * (255.0 - full as f64)) as u8;
                let color = if t == p {
                    RGBColor(shade(40), shade(110), shade(200))
                } else {
                    RGBColor(shade(220), shade(60), shade(40))
                };
                let (x, y) = (left + p as i32 * cell, top + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    color.filled(),
                ))
                .map_err(s)?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    BLACK.mix(0.15),
                ))
                .map_err(s)?;
                if n > 0 {
                    let ink = if share > 0.5 { WHITE } else { BLACK };
                    text(&n.to_string(), (x + 6, y + cell / 2 - 6), 12, &ink)?;
                }
            }
        }
        Ok(())
    })
}

// The run's loss and accuracy curves as a PNG, drawn by gnuplot (Debian gnuplot-nox) from
// metrics.csv: training loss per logged step and per epoch, test loss and accuracy per epoch.
module;
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <fmt/format.h>
export module odyssey.train:plot;

export namespace odyssey {

/// Renders `csv` to `png` with gnuplot. Returns an empty string on success, otherwise why
/// it did not (gnuplot missing or failing); plotting never stops a run.
inline std::string plot_metrics(const std::filesystem::path& csv, const std::filesystem::path& png,
                                const std::string& title) {
  const auto script = png.parent_path() / "plot.gp";
  {
    std::ofstream gp(script);
    if (!gp) return "cannot write " + script.string();
    gp << fmt::format(R"(set terminal pngcairo size 1200,480 noenhanced
set output '{}'
set datafile separator ','
set multiplot layout 1,2 title '{}'
set xlabel 'step'
set ylabel 'loss'
set key top right
set grid
plot '{}' using (strcol(1) eq 'step' ? $3 : 1/0):5 with lines lw 1 lc rgb '#4a7ab5' title 'train (logged steps)', \
     '' using (strcol(1) eq 'epoch' ? $3 : 1/0):5 with linespoints pt 7 lc rgb '#1f3f66' title 'train (epoch)', \
     '' using (strcol(1) eq 'epoch' ? $3 : 1/0):7 with linespoints pt 5 lc rgb '#c0392b' title 'test (epoch)'
set ylabel 'accuracy (%)'
set key bottom right
plot '{}' using (strcol(1) eq 'step' ? $3 : 1/0):($6*100) with lines lw 1 lc rgb '#4a7ab5' title 'train (logged steps)', \
     '' using (strcol(1) eq 'epoch' ? $3 : 1/0):($8*100) with linespoints pt 5 lc rgb '#c0392b' title 'test (epoch)'
unset multiplot
)",
                      png.string(), title, csv.string(), csv.string());
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    return "gnuplot is not installed (Debian package gnuplot-nox); metrics.csv has the numbers";
  const std::string cmd = fmt::format("gnuplot '{}' 2>'{}.log'", script.string(), script.string());
  if (std::system(cmd.c_str()) != 0)
    return fmt::format("gnuplot failed (see {}.log); metrics.csv has the numbers", script.string());
  return {};
}

}  // namespace odyssey

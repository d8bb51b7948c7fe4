// deploy/docker/Dockerfile without a container engine: its runtime stage installs, through apt's
// dependencies or the debian:bookworm base image, the Debian package of every shared library the
// binaries load (`ldd build/bin/rally*`, each file mapped to its package with `dpkg -S`), and no
// stage installs the test-only toolchains (cross compiler, QEMU, clang, GoogleTest).
// Skipped where dpkg or ldd is missing (not a Debian machine) or the binaries are not built.
#include <gtest/gtest.h>

#include <deque>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "tests/deploy/manifests.h"

namespace rally::deploy {
namespace {

const char* const kBinaries[] = {"rally", "rally-control", "rally-replay", "rally-learner",
                                 "rally-actor"};
const char* const kTestOnlyPackages[] = {"g++-aarch64-linux-gnu", "qemu-user",    "clang",
                                         "libclang-rt-14-dev",    "libgtest-dev", "libgmock-dev"};

// The packages that the `apt-get install` of stage `stage` (its `AS` name) names.
std::vector<std::string> StagePackages(const std::string& dockerfile, const std::string& stage) {
  // Continuation lines joined; comments dropped.
  std::string joined;
  for (absl::string_view line : absl::StrSplit(dockerfile, '\n')) {
    line = absl::StripLeadingAsciiWhitespace(line);
    if (absl::StartsWith(line, "#")) continue;
    if (absl::ConsumeSuffix(&line, "\\")) {
      absl::StrAppend(&joined, line, " ");
    } else {
      absl::StrAppend(&joined, line, "\n");
    }
  }
  std::vector<std::string> packages;
  bool in_stage = false;
  for (absl::string_view line : absl::StrSplit(joined, '\n')) {
    if (absl::StartsWith(line, "FROM ")) in_stage = absl::EndsWith(line, " AS " + stage);
    if (!in_stage || !absl::StrContains(line, "apt-get install")) continue;
    bool listing = false;
    for (absl::string_view word : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      if (word == "install") {
        listing = true;
      } else if (word == "&&") {
        listing = false;
      } else if (listing && !absl::StartsWith(word, "-")) {
        packages.emplace_back(word);
      }
    }
  }
  return packages;
}

// Installed packages and what dpkg knows of them.
struct InstalledPackage {
  bool base = false;  // Essential or of priority required: in every debian image
  std::vector<std::vector<std::string>> depends;  // Pre-Depends and Depends; inner: alternatives
};

std::vector<std::vector<std::string>> ParseDepends(const std::string& field) {
  std::vector<std::vector<std::string>> out;
  for (absl::string_view clause : absl::StrSplit(field, ',', absl::SkipWhitespace())) {
    std::vector<std::string> alternatives;
    for (absl::string_view alt : absl::StrSplit(clause, '|')) {
      alt = absl::StripAsciiWhitespace(alt);
      alt = alt.substr(0, alt.find_first_of(" (:"));
      if (!alt.empty()) alternatives.emplace_back(alt);
    }
    if (!alternatives.empty()) out.push_back(alternatives);
  }
  return out;
}

std::map<std::string, InstalledPackage> InstalledPackages(
    std::map<std::string, std::string>* provider_of) {
  const CommandResult r = RunCommand(
      "dpkg-query -W -f='${db:Status-Abbrev}\\t${Package}\\t${Essential}\\t${Priority}\\t"
      "${Provides}\\t${Pre-Depends}, ${Depends}\\n'");
  std::map<std::string, InstalledPackage> out;
  for (absl::string_view line : absl::StrSplit(r.output, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    if (f.size() < 6 || !absl::StartsWith(f[0], "ii")) continue;
    InstalledPackage& p = out[f[1]];
    p.base = f[2] == "yes" || f[3] == "required";
    p.depends = ParseDepends(f[5]);
    for (const auto& provided : ParseDepends(f[4])) provider_of->emplace(provided[0], f[1]);
  }
  return out;
}

// The packages an image holds after `apt-get install --no-install-recommends roots` on the base
// image: the base, the roots, and their Depends. Of alternatives, the one already chosen, else the
// first that is a package (or a virtual one's installed provider).
std::set<std::string> ImageClosure(const std::vector<std::string>& roots,
                                   const std::map<std::string, InstalledPackage>& installed,
                                   const std::map<std::string, std::string>& provider_of) {
  std::set<std::string> chosen;
  std::deque<std::string> queue(roots.begin(), roots.end());
  for (const auto& [name, p] : installed) {
    if (p.base) queue.push_back(name);
  }
  while (!queue.empty()) {
    const std::string name = queue.front();
    queue.pop_front();
    if (!chosen.insert(name).second || !installed.count(name)) continue;
    for (const auto& alternatives : installed.at(name).depends) {
      std::string pick;
      for (const std::string& a : alternatives) {
        if (chosen.count(a)) pick = a;
      }
      for (const std::string& a : alternatives) {
        if (!pick.empty()) break;
        if (installed.count(a))
          pick = a;
        else if (provider_of.count(a))
          pick = provider_of.at(a);
      }
      if (!pick.empty()) queue.push_back(pick);
    }
  }
  return chosen;
}

// Every file of every installed package and its package, from dpkg's database (what `dpkg -S`
// reads, once instead of once per library).
std::map<std::string, std::string> FileOwners() {
  std::map<std::string, std::string> owners;
  for (const auto& entry : std::filesystem::directory_iterator("/var/lib/dpkg/info")) {
    if (entry.path().extension() != ".list") continue;
    std::string package = entry.path().stem().string();
    package = package.substr(0, package.find(':'));  // libfoo1:amd64 -> libfoo1
    std::istringstream files(ReadText(entry.path().string()));
    for (std::string file; std::getline(files, file);) owners.emplace(file, package);
  }
  return owners;
}

// The package that owns `library` (as ldd printed it): the file it resolves to first (an
// alternatives link like libblas.so.3 belongs to no package), then the path itself and its
// /usr-merged twin; "" if none.
std::string OwningPackage(const std::map<std::string, std::string>& owners,
                          const std::string& library) {
  std::error_code error;
  const std::string twin =
      absl::StartsWith(library, "/usr/") ? library.substr(4) : absl::StrCat("/usr", library);
  for (const std::string& path :
       {std::filesystem::canonical(library, error).string(), library, twin}) {
    if (auto it = owners.find(path); it != owners.end()) return it->second;
  }
  return "";
}

// Every shared library `binary` loads: ldd's resolved paths; `missing` collects those it could
// not find.
std::set<std::string> LoadedLibraries(const std::string& binary,
                                      std::vector<std::string>* missing) {
  std::set<std::string> out;
  for (absl::string_view line : absl::StrSplit(RunCommand("ldd " + binary).output, '\n')) {
    if (absl::StrContains(line, "not found")) missing->emplace_back(line);
    const size_t arrow = line.find("=> /");
    if (arrow == absl::string_view::npos) continue;
    absl::string_view path = line.substr(arrow + 3);
    out.emplace(path.substr(0, path.find(' ')));
  }
  return out;
}

class DockerImage : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* program : {"dpkg", "dpkg-query", "ldd"}) {
      if (!HaveProgram(program)) GTEST_SKIP() << program << " is not installed (not Debian)";
    }
    for (const char* binary : kBinaries) {
      if (!std::filesystem::exists(std::string(RALLY_BIN_DIR) + "/" + binary)) {
        GTEST_SKIP() << binary << " is not built";
      }
    }
    dockerfile_ = ReadText(SourcePath("deploy/docker/Dockerfile"));
    ASSERT_FALSE(dockerfile_.empty());
  }
  std::string dockerfile_;
};

TEST_F(DockerImage, RuntimeStageHoldsEveryLibraryTheBinariesLoad) {
  const std::vector<std::string> runtime = StagePackages(dockerfile_, "runtime");
  ASSERT_FALSE(runtime.empty()) << "no apt-get install in the runtime stage";
  std::map<std::string, std::string> provider_of;
  const auto installed = InstalledPackages(&provider_of);
  for (const std::string& p : runtime) {
    EXPECT_TRUE(installed.count(p)) << p << " (runtime stage) is not installed on this machine, "
                                    << "which built and runs the binaries: a misspelling?";
    EXPECT_FALSE(absl::EndsWith(p, "-dev")) << p << ": a development package in the runtime stage";
  }
  const std::set<std::string> image = ImageClosure(runtime, installed, provider_of);
  std::vector<std::string> missing;
  std::set<std::string> libraries;
  for (const char* binary : kBinaries) {
    libraries.merge(LoadedLibraries(std::string(RALLY_BIN_DIR) + "/" + binary, &missing));
  }
  EXPECT_TRUE(missing.empty()) << absl::StrJoin(missing, "\n");
  EXPECT_GT(libraries.size(), 20u);  // LibTorch alone loads dozens
  const auto owners = FileOwners();
  for (const std::string& library : libraries) {
    const std::string package = OwningPackage(owners, library);
    ASSERT_FALSE(package.empty()) << library << " belongs to no Debian package";
    EXPECT_TRUE(image.count(package))
        << library << " (package " << package << ") is not in the runtime stage: add " << package
        << " to deploy/docker/Dockerfile's runtime apt-get install";
  }
}

TEST_F(DockerImage, NoStageInstallsTheTestOnlyToolchains) {
  const std::vector<std::string> build = StagePackages(dockerfile_, "build");
  ASSERT_FALSE(build.empty()) << "the build stage must name its packages";
  for (absl::string_view line : absl::StrSplit(dockerfile_, '\n')) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "#")) continue;
    EXPECT_FALSE(absl::StrContains(line, "install-deps.sh"))
        << "install-deps.sh installs the tests' toolchains too: " << line;
  }
  const std::string install_deps = ReadText(SourcePath("deploy/local/install-deps.sh"));
  for (const std::string& p : build) {
    EXPECT_TRUE(absl::StrContains(install_deps, p))
        << p << " (build stage) is not one of deploy/local/install-deps.sh's packages";
  }
  for (const char* stage : {"build", "runtime"}) {
    for (const std::string& p : StagePackages(dockerfile_, stage)) {
      for (const char* test_only : kTestOnlyPackages) {
        EXPECT_NE(p, test_only) << "the " << stage << " stage installs " << p;
      }
    }
  }
}

}  // namespace
}  // namespace rally::deploy

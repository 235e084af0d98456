// The one bindings file: convert, validate, release the GIL, call the core. No logic lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "xmhash/isa.hpp"
#include "xmhash/mih.hpp"
#include "xmhash/parallel.hpp"
#include "xmhash/search.hpp"

#if defined(XMHASH_WITH_CUDA)
#include "hamming.cuh"
#endif

namespace py = pybind11;
using namespace xmhash;

namespace {

using CodesIn = py::array_t<std::uint8_t, py::array::c_style>;

// Validated view of a 2-D C-contiguous uint8 array (the Python layer has already normalised inputs).
struct Codes {
  const code_t* data;
  std::size_t n, width;
};

Codes codes_view(const CodesIn& a, const char* name) {
  if (a.ndim() != 2)
    throw std::invalid_argument(std::string(name) + " must be a 2-D uint8 array of packed codes, got " +
                                std::to_string(a.ndim()) + " dimensions");
  return {a.data(), static_cast<std::size_t>(a.shape(0)), static_cast<std::size_t>(a.shape(1))};
}

std::size_t common_width(const Codes& q, const Codes& db) {
  if (q.width != db.width)
    throw std::invalid_argument("queries and database must have the same code width, got " + std::to_string(q.width) +
                                " and " + std::to_string(db.width) + " bytes");
  check_code_size(q.width);
  return q.width;
}

template <class T>
py::array_t<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  py::capsule owner(heap, [](void* p) { delete static_cast<std::vector<T>*>(p); });
  return py::array_t<T>({static_cast<py::ssize_t>(heap->size())}, {sizeof(T)}, heap->data(), owner);
}

py::tuple range_to_python(RangeResultData&& r) {
  return py::make_tuple(to_numpy(std::move(r.lims)), to_numpy(std::move(r.distances)), to_numpy(std::move(r.indices)));
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "xmhash native core (private: use the xmhash package)";
  init_isa_from_env();

  // ------------------------------------------------------------------ engine: build facts and ISA
  m.attr("__version__") = XMHASH_VERSION;
#if defined(XMHASH_WITH_CUDA)
  m.attr("cuda_built") = true;
  m.attr("cuda_architectures") = XMHASH_CUDA_ARCHS;
#else
  m.attr("cuda_built") = false;
  m.attr("cuda_architectures") = "";
#endif
  m.def("get_isa", [] { return std::string(isa_name(active_isa())); });
  m.def("set_isa", [](const std::string& name) { set_isa(parse_isa(name)); }, py::arg("isa"));
  m.def("available_isas", [] {
    std::vector<std::string> out;
    for (Isa isa : available_isas()) out.emplace_back(isa_name(isa));
    return out;
  });
  m.def("default_threads", [] { return resolve_threads(0); });

  // ------------------------------------------------------------------ engine: brute-force search
  m.def(
      "cdist",
      [](const CodesIn& q, const CodesIn& db, int threads) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        py::array_t<dist_t> out({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(dv.n)});
        dist_t* o = out.mutable_data();
        {
          py::gil_scoped_release release;
          cdist(qv.data, qv.n, dv.data, dv.n, cs, o, threads);
        }
        return out;
      },
      py::arg("queries"), py::arg("database"), py::arg("threads") = 0);

  m.def(
      "knn",
      [](const CodesIn& q, const CodesIn& db, std::size_t k, int threads) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        py::array_t<dist_t> D({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
        py::array_t<idx_t> I({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
        dist_t* d = D.mutable_data();
        idx_t* ix = I.mutable_data();
        {
          py::gil_scoped_release release;
          knn(qv.data, qv.n, dv.data, dv.n, cs, k, d, ix, threads);
        }
        return py::make_tuple(D, I);
      },
      py::arg("queries"), py::arg("database"), py::arg("k"), py::arg("threads") = 0);

  m.def(
      "range_search",
      [](const CodesIn& q, const CodesIn& db, int radius, int threads, std::size_t k) {
        Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
        std::size_t cs = common_width(qv, dv);
        RangeResultData r;
        {
          py::gil_scoped_release release;
          r = range_search(qv.data, qv.n, dv.data, dv.n, cs, radius, threads, k);
        }
        return range_to_python(std::move(r));
      },
      py::arg("queries"), py::arg("database"), py::arg("radius"), py::arg("threads") = 0, py::arg("k") = 0);

  // ------------------------------------------------------------------ metrics

  // ------------------------------------------------------------------ pairwise loss

  // ------------------------------------------------------------------ multi-index hashing
  {
    // The tables index codes the Python HammingIndex owns; every call passes those codes (validated here).
    auto check_width = [](const MultiIndexHashing& self, const Codes& c, const char* name) {
      if (c.width * 8 != static_cast<std::size_t>(self.nbits()))
        throw std::invalid_argument(std::string(name) + " must have " + std::to_string(self.nbits()) +
                                    " bits per code, got " + std::to_string(c.width * 8));
    };
    auto stats_dict = [](const MihStats& s) {
      py::dict d;
      d["method"] = method_name(s.used);
      d["queries"] = s.queries;
      d["probes"] = s.probes;
      d["candidates"] = s.candidates;
      d["mih_queries"] = s.mih_queries;
      d["scan_queries"] = s.scan_queries;
      d["sampled"] = s.sampled;
      d["est_mih_ns"] = s.est_mih_ns;
      d["est_scan_ns"] = s.est_scan_ns;
      return d;
    };
    py::class_<MultiIndexHashing>(m, "MultiIndexHashing")
        .def(py::init<int, int>(), py::arg("nbits"), py::arg("m") = 0)
        .def(
            "add",
            [check_width](MultiIndexHashing& self, const CodesIn& db, int threads) {
              Codes dv = codes_view(db, "database");
              check_width(self, dv, "database");
              py::gil_scoped_release release;
              self.add(dv.data, dv.n, threads);
            },
            py::arg("database"), py::arg("threads") = 0)
        .def("reset", [](MultiIndexHashing& self) {
          py::gil_scoped_release release;
          self.reset();
        })
        .def_property_readonly("nbits", &MultiIndexHashing::nbits)
        .def_property_readonly("m", &MultiIndexHashing::m)
        .def_property_readonly("ntotal", &MultiIndexHashing::ntotal)
        .def_property_readonly("segment_sizes", &MultiIndexHashing::segment_sizes)
        .def_property_readonly("segment_substrings", &MultiIndexHashing::segment_substrings)
        .def_property_readonly("memory_bytes", &MultiIndexHashing::memory_bytes)
        .def(
            "range_search",
            [check_width, stats_dict](const MultiIndexHashing& self, const CodesIn& q, const CodesIn& db, int radius,
                                      int threads, std::size_t k, const std::string& method) {
              Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
              check_width(self, qv, "queries");
              check_width(self, dv, "database");
              const SearchMethod how = parse_method(method);
              MihStats st;
              RangeResultData r;
              {
                py::gil_scoped_release release;
                r = self.search(qv.data, qv.n, dv.data, dv.n, k, radius, threads, how, &st);
              }
              return py::make_tuple(range_to_python(std::move(r)), stats_dict(st));
            },
            py::arg("queries"), py::arg("database"), py::arg("radius"), py::arg("threads") = 0, py::arg("k") = 0,
            py::arg("method") = "auto")
        .def(
            "knn",
            [check_width, stats_dict](const MultiIndexHashing& self, const CodesIn& q, const CodesIn& db,
                                      std::size_t k, int threads, const std::string& method) {
              Codes qv = codes_view(q, "queries"), dv = codes_view(db, "database");
              check_width(self, qv, "queries");
              check_width(self, dv, "database");
              const SearchMethod how = parse_method(method);
              py::array_t<dist_t> D({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
              py::array_t<idx_t> I({static_cast<py::ssize_t>(qv.n), static_cast<py::ssize_t>(k)});
              dist_t* d = D.mutable_data();
              idx_t* ix = I.mutable_data();
              MihStats st;
              {
                py::gil_scoped_release release;
                self.knn(qv.data, qv.n, dv.data, dv.n, k, d, ix, threads, how, &st);
              }
              return py::make_tuple(D, I, stats_dict(st));
            },
            py::arg("queries"), py::arg("database"), py::arg("k"), py::arg("threads") = 0, py::arg("method") = "auto");
    m.def("mih_auto_substrings", &auto_substrings, py::arg("nbits"), py::arg("n"));
    m.def(
        "mih_split_substrings",
        [](int nbits, int m_) {
          std::vector<std::pair<int, int>> out;
          for (Substring s : split_substrings(nbits, m_)) out.emplace_back(s.start, s.len);
          return out;
        },
        py::arg("nbits"), py::arg("m"));
  }

  // ------------------------------------------------------------------ cuda
#if defined(XMHASH_WITH_CUDA)
  m.def("cuda_device_count", [] { return xmhash_cuda_device_count(); });
  m.def("cuda_error_string", [](int code) { return std::string(xmhash_cuda_error_string(code)); });
#endif
}

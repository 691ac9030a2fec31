// compare_descriptors OURS.pb UPSTREAM.pb — checks that every message, field,
// enum value, service and RPC declared in OURS (a FileDescriptorSet made by
// `protoc --include_imports --descriptor_set_out`) exists in UPSTREAM with the
// same number, type, cardinality and streaming, i.e. that OURS is a
// wire-compatible subset. Prints one line per difference; exit 1 if any.
#include <fstream>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <iostream>
#include <memory>
#include <set>
#include <string>

namespace gp = google::protobuf;

namespace {

int differences = 0;
int checked = 0;

void differ(const std::string& what) {
  ++differences;
  std::cout << "DIFFERS: " << what << "\n";
}

std::unique_ptr<gp::DescriptorPool> load(const char* path, std::set<std::string>* names) {
  std::ifstream in(path, std::ios::binary);
  gp::FileDescriptorSet set;
  if (!in || !set.ParseFromIstream(&in)) {
    std::cerr << "compare_descriptors: cannot read descriptor set " << path << "\n";
    std::exit(2);
  }
  auto pool = std::make_unique<gp::DescriptorPool>();
  for (const auto& file : set.file()) {
    if (!pool->BuildFile(file)) {
      std::cerr << "compare_descriptors: cannot build " << file.name() << " from " << path << "\n";
      std::exit(2);
    }
    if (names) names->insert(file.name());
  }
  return pool;
}

std::string type_of(const gp::FieldDescriptor* f) {
  std::string t = f->type_name();
  if (f->message_type()) t += " " + f->message_type()->full_name();
  if (f->enum_type()) t += " " + f->enum_type()->full_name();
  if (f->is_repeated()) t = "repeated " + t;
  if (f->real_containing_oneof()) t += " in oneof " + f->real_containing_oneof()->name();
  return t;
}

void compare_enum(const gp::EnumDescriptor* ours, const gp::DescriptorPool& up) {
  const auto* theirs = up.FindEnumTypeByName(ours->full_name());
  if (!theirs) return differ("enum " + ours->full_name() + " is not upstream");
  for (int i = 0; i < ours->value_count(); ++i) {
    const auto* v = ours->value(i);
    const auto* u = theirs->FindValueByName(v->name());
    ++checked;
    if (!u)
      differ("enum value " + v->full_name() + " is not upstream");
    else if (u->number() != v->number())
      differ("enum value " + v->full_name() + " = " + std::to_string(v->number()) + ", upstream " +
             std::to_string(u->number()));
  }
}

void compare_message(const gp::Descriptor* ours, const gp::DescriptorPool& up) {
  const auto* theirs = up.FindMessageTypeByName(ours->full_name());
  if (!theirs) return differ("message " + ours->full_name() + " is not upstream");
  for (int i = 0; i < ours->field_count(); ++i) {
    const auto* f = ours->field(i);
    const auto* u = theirs->FindFieldByName(f->name());
    ++checked;
    if (!u) {
      differ("field " + f->full_name() + " is not upstream");
      continue;
    }
    if (u->number() != f->number())
      differ("field " + f->full_name() + " = " + std::to_string(f->number()) + ", upstream " +
             std::to_string(u->number()));
    if (type_of(u) != type_of(f))
      differ("field " + f->full_name() + " is " + type_of(f) + ", upstream " + type_of(u));
  }
  for (int i = 0; i < ours->nested_type_count(); ++i) compare_message(ours->nested_type(i), up);
  for (int i = 0; i < ours->enum_type_count(); ++i) compare_enum(ours->enum_type(i), up);
}

void compare_service(const gp::ServiceDescriptor* ours, const gp::DescriptorPool& up) {
  const auto* theirs = up.FindServiceByName(ours->full_name());
  if (!theirs) return differ("service " + ours->full_name() + " is not upstream");
  auto shape = [](const gp::MethodDescriptor* m) {
    return std::string(m->client_streaming() ? "stream " : "") + m->input_type()->full_name() +
           " -> " + (m->server_streaming() ? "stream " : "") + m->output_type()->full_name();
  };
  for (int i = 0; i < ours->method_count(); ++i) {
    const auto* m = ours->method(i);
    const auto* u = theirs->FindMethodByName(m->name());
    ++checked;
    if (!u)
      differ("rpc " + m->full_name() + " is not upstream");
    else if (shape(m) != shape(u))
      differ("rpc " + m->full_name() + " is " + shape(m) + ", upstream " + shape(u));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: compare_descriptors OURS.pb UPSTREAM.pb\n";
    return 2;
  }
  std::set<std::string> our_files;
  auto ours = load(argv[1], &our_files);
  auto upstream = load(argv[2], nullptr);
  for (const auto& name : our_files) {
    const auto* file = ours->FindFileByName(name);
    if (file->package() == "google.protobuf") continue;
    for (int i = 0; i < file->message_type_count(); ++i)
      compare_message(file->message_type(i), *upstream);
    for (int i = 0; i < file->enum_type_count(); ++i) compare_enum(file->enum_type(i), *upstream);
    for (int i = 0; i < file->service_count(); ++i) compare_service(file->service(i), *upstream);
  }
  if (checked == 0) {
    std::cout << "DIFFERS: nothing declared in " << argv[1] << "\n";
    return 1;
  }
  if (differences) return 1;
  std::cout << "ok: " << checked << " fields, enum values and rpcs match upstream\n";
  return 0;
}
